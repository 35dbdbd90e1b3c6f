"""LENS, sampled and searched sensitivity, and certification in the audit, its report, HTML,
gate and command line."""

import json

import jsonschema
import pytest
from typer.testing import CliRunner

from attrib_audit.cli import app
from attrib_audit.models import sample_model
from attrib_audit.pipeline import AuditConfig, audit
from attrib_audit.report import SCHEMA
from attrib_audit.report.gate import evidence_problems

DIGITS = str(sample_model("digits-cnn", "pt"))
FASHION = str(sample_model("fashion-mnist-natural", "pt"))
ROBUST = str(sample_model("fashion-mnist-robust", "pt"))
NEW_METRICS = [
    "lens_topk",
    "lens_spearman",
    "lens_kendall",
    "topk_div",
    "max_sensitivity",
    "avg_sensitivity",
    "local_lipschitz",
    "ris",
]


@pytest.fixture(scope="module")
def sensitivity_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("sensitivity")
    cfg = AuditConfig(
        model=FASHION,
        samples=12,
        methods=["sm"],
        attacks=["random", "ifia-sensitivity"],
        attack_params={"random": {"samples": 8}, "ifia-sensitivity": {"samples": 8}},
        epsilons=[0.05, 0.1],
        steps=5,
        out=str(out),
        formats=["json", "html"],
    )
    return audit(cfg), out


def test_every_new_metric_is_in_the_report_and_the_html(sensitivity_report):
    report, out = sensitivity_report
    jsonschema.validate(report, SCHEMA)
    html = (out / "report.html").read_text()
    for name in NEW_METRICS:
        assert all(name in r["metrics"] for r in report["results"])
        assert report["summary"]["sm"][name] is not None
        assert name in html
    assert report["evidence"]["conclusive"], report["evidence"]


def test_the_search_is_at_least_the_sampled_maximum_on_every_sample(sensitivity_report):
    report, _ = sensitivity_report
    rows = {(r["attack"], r["epsilon"], r["index"]): r for r in report["samples"]}
    pairs = [
        (rows[("random", e, i)], r) for (a, e, i), r in rows.items() if a == "ifia-sensitivity"
    ]
    assert len(pairs) == 2 * report["data"]["n_correct"]
    for sampled, searched in pairs:
        assert searched["max_sensitivity"] >= sampled["max_sensitivity"] - 1e-9
        assert sampled["avg_sensitivity"] <= sampled["max_sensitivity"] + 1e-12
    mean = {r["attack"]: r["metrics"]["max_sensitivity"]["mean"] for r in report["results"]}
    assert mean["ifia-sensitivity"] > mean["random"]
    # the worst case over attacks, the audit's number, is the searched one
    at = [r for r in report["results"] if r["epsilon"] == 0.1]
    worst = max(r["metrics"]["max_sensitivity"]["mean"] for r in at)
    assert report["summary"]["sm"]["max_sensitivity"] == worst


@pytest.fixture(scope="module")
def certified_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("certified")
    cfg = AuditConfig(
        model=DIGITS,
        samples=10,
        methods=["sm"],
        attacks=["random"],
        epsilons=[8 / 255],
        certify={"samples": 60, "n0": 5},
        require=["certified_topk>=0.01"],
        out=str(out),
        formats=["json", "html"],
    )
    return audit(cfg), out


def test_the_certificate_is_in_the_report_the_summary_and_the_html(certified_report):
    report, out = certified_report
    jsonschema.validate(report, SCHEMA)
    cert = report["certification"]
    n = report["data"]["n_correct"]
    assert cert["methods"]["sm"]["n"] == n and cert["norm"] == "l2"
    mean = cert["methods"]["sm"]["certified_topk"]["mean"]
    assert 0 < mean <= 1
    assert report["summary"]["sm"]["certified_topk"] == mean
    curve = cert["methods"]["sm"]["curve"]
    assert len(curve) == len(cert["curve_radii"]) and curve == sorted(curve, reverse=True)
    assert curve[-1] == 0  # nothing is certified beyond the reachable radius
    assert report["config"]["certify"]["samples"] == 60
    assert report["gate"]["passed"]
    assert 'id="certification"' in (out / "report.html").read_text()


def test_certify_command_gates_and_refuses_bad_settings(tmp_path):
    runner = CliRunner()
    base = ["certify", DIGITS, "--samples", "6", "--methods", "sm"]
    fast = [
        "--certify-param",
        "samples=30",
        "--certify-param",
        "n0=5",
        "--certify-param",
        "radius=0.05",
    ]
    out = tmp_path / "pass"
    ok = runner.invoke(app, [*base, *fast, "--out", str(out), "--require", "certified_topk>=0"])
    assert ok.exit_code == 0, ok.output
    report = json.loads((out / "report.json").read_text())
    assert report["results"] == [] and "certified_topk" in report["summary"]["sm"]
    fail = runner.invoke(
        app, [*base, *fast, "--out", str(tmp_path / "fail"), "--require", "certified_topk>=1"]
    )
    assert fail.exit_code == 1, fail.output
    bad = tmp_path / "bad"
    for args in (["--certify-param", "sigma=0"], ["--certify-param", "radius=5"]):
        res = runner.invoke(app, [*base, *args, "--out", str(bad)])
        assert res.exit_code == 2 and "--certify-param" in res.output, res.output
        assert not bad.exists()


def test_certified_topk_needs_certify(tmp_path):
    res = CliRunner().invoke(
        app, ["audit", DIGITS, "--require", "certified_topk>=0.5", "--out", str(tmp_path / "o")]
    )
    assert res.exit_code == 2 and "--certify" in res.output


@pytest.mark.slow
def test_the_robust_model_is_certified_on_a_larger_fraction(tmp_path):
    """The bundled CACR+WACR model against the natural one it was fine-tuned from (IG)."""
    fractions = {}
    for name, model in (("natural", FASHION), ("robust", ROBUST)):
        cfg = AuditConfig(model=model, samples=32, methods=["ig"], attacks=[], certify={}, out=None)
        fractions[name] = audit(cfg)["summary"]["ig"]["certified_topk"]
    assert fractions["robust"] > fractions["natural"], fractions


def test_a_sample_no_draw_kept_reports_x_itself():
    cfg = AuditConfig(
        model=DIGITS,
        samples=30,
        methods=["sm"],
        attacks=["random"],
        attack_params={"random": {"samples": 3}},
        epsilons=[0.6],
        out=None,
    )
    report = audit(cfg)
    rows = report["samples"]
    lost = [r for r in rows if not r["prediction_kept"]]
    assert lost and len(lost) < len(rows)
    for r in lost:
        assert r["topk_intersection"] == 1.0 and r["max_sensitivity"] == 0.0
    assert all(r["max_sensitivity"] is not None for r in rows)
    assert report["evidence"]["conclusive"]


def test_a_flat_clean_map_is_left_out_not_missing(tmp_path):
    """Grad-CAM rectifies the natural model's map of slice image 1 to zero: it ranks no
    pixel, so its metrics are null and counted as flat, and the rest is still evidence."""
    cfg = AuditConfig(
        model=FASHION,
        samples=3,
        methods=["gradcam"],
        attacks=["random"],
        epsilons=[0.1],
        out=str(tmp_path),
        formats=["json", "html"],
    )
    report = audit(cfg)
    jsonschema.validate(report, SCHEMA)
    flat = [r for r in report["samples"] if r["flat_map"]]
    assert [r["index"] for r in flat] == [1]
    assert all(flat[0][name] is None for name in report["config"]["metrics"])
    (result,) = report["results"]
    assert result["flat_maps"] == 1 and result["n"] == 3
    others = [r["topk_intersection"] for r in report["samples"] if not r["flat_map"]]
    assert result["metrics"]["topk_intersection"]["mean"] == pytest.approx(sum(others) / 2)
    assert report["evidence"]["conclusive"], report["evidence"]
    assert "(1 flat)" in (tmp_path / "report.html").read_text()

    only_flat = {**report, "samples": flat, "summary": {"gradcam": {"topk_intersection": None}}}
    assert evidence_problems(only_flat) == ["no finite value for gradcam.topk_intersection"]
