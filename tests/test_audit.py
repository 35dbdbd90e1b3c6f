import importlib
import json
import xml.etree.ElementTree as ET

import jsonschema
import pytest
import torch

from attrib_audit.models import sample_model
from attrib_audit.pipeline import JOURNAL, AuditConfig, audit
from attrib_audit.report import SCHEMA

DIGITS = str(sample_model("digits-cnn", "pt"))
# the small digits model keeps these tests fast; the default (Fashion-MNIST) audit has its own
QUICK = {
    "model": DIGITS,
    "samples": 24,
    "batch_size": 10,
    "steps": 4,
    "method_params": {"ig": {"steps": 4}},
    "epsilons": [2 / 255, 8 / 255],
}


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("audit")
    report = audit(
        AuditConfig(**QUICK, out=str(out), require=["topk_intersection>=0.1", "sm.kendall>=0.99"])
    )
    return report, out


def test_report_validates_and_holds_the_contract(quick_report):
    report, out = quick_report
    jsonschema.validate(report, SCHEMA)
    on_disk = json.loads((out / "report.json").read_text())
    jsonschema.validate(on_disk, SCHEMA)
    assert on_disk == json.loads(json.dumps(report))
    assert report["data"]["n_samples"] == 24
    n = report["data"]["n_correct"]
    assert len(report["results"]) == 2 * 2 * 2  # methods x attacks x epsilons
    assert all(r["n"] == n for r in report["results"])
    assert len(report["samples"]) == 8 * n
    assert set(report["auc"]) == {"sm", "ig"}
    assert report["model"]["sha256"] and report["config"]["seed"] == 0
    assert not (out / JOURNAL).exists()


def test_random_is_the_floor(quick_report):
    report, _ = quick_report
    res = {
        (r["method"], r["attack"], r["epsilon"]): r["metrics"]["topk_intersection"]["mean"]
        for r in report["results"]
    }
    assert res[("sm", "ifia-topk", 8 / 255)] < res[("sm", "random", 8 / 255)]


def test_gate_and_junit(quick_report):
    report, out = quick_report
    assert [c["passed"] for c in report["gate"]["checks"]] == [True, False]
    root = ET.parse(out / "junit.xml").getroot()
    cases = root.findall(".//testcase")
    assert [c.get("name") for c in cases] == ["topk_intersection>=0.1", "sm.kendall>=0.99"]
    assert cases[0].find("failure") is None and cases[1].find("failure") is not None
    assert root.find("testsuite").get("failures") == "1"


def test_html_has_every_section_and_escapes_user_strings(tmp_path):
    hostile = "<script>alert('x')</script>"
    classes = tuple([hostile] + [str(i) for i in range(1, 10)])
    audit(
        AuditConfig(
            **{**QUICK, "samples": 10}, classes=classes, out=str(tmp_path), formats=["html"]
        )
    )
    html = (tmp_path / "report.html").read_text()
    for section in (
        "verdict",
        "summary",
        "curves",
        "distributions",
        "gallery",
        "surrogate",
        "config",
    ):
        assert f'<section id="{section}">' in html
    assert hostile not in html and "&lt;script&gt;" in html
    assert "(Integrated Gradients)" in html and "(Saliency map)" in html  # the titles
    assert html.count("data:image/png;base64,") >= 6


def test_resume_after_an_interruption_gives_the_same_report(tmp_path, monkeypatch):
    audit_module = importlib.import_module("attrib_audit.pipeline")

    cfg = {**QUICK, "samples": 20}
    whole = audit(AuditConfig(**cfg, out=str(tmp_path / "a")))
    calls = []

    def interrupt(done, total, label):
        calls.append(done)
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        audit(AuditConfig(**cfg, out=str(tmp_path / "b")), progress=interrupt)
    assert (tmp_path / "b" / JOURNAL).exists() and not (tmp_path / "b" / "report.json").exists()
    redone = []
    real = audit_module._attack_cell
    monkeypatch.setattr(
        audit_module, "_attack_cell", lambda *a, **k: redone.append(a[2:5]) or real(*a, **k)
    )
    resumed = audit(AuditConfig(**cfg, out=str(tmp_path / "b"), resume=True))
    assert len(redone) == 16 - 5  # 2 batches x 8 cells, 5 finished before the interruption
    resumed["config"].pop("out")
    whole["config"].pop("out")
    assert json.dumps(resumed, sort_keys=True) == json.dumps(whole, sort_keys=True)
    assert not (tmp_path / "b" / JOURNAL).exists()


def test_resume_refuses_other_settings(tmp_path):
    from attrib_audit.errors import AttribAuditError

    def interrupt(done, total, label):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        audit(AuditConfig(**QUICK, out=str(tmp_path)), progress=interrupt)
    with pytest.raises(AttribAuditError, match=r"the settings changed \(steps 4 -> 5\)"):
        audit(AuditConfig(**{**QUICK, "steps": 5}, out=str(tmp_path), resume=True))


def test_onnx_model_is_rechecked_on_onnxruntime(tmp_path):
    onnx_model = str(sample_model("digits-cnn", "onnx"))
    report = audit(AuditConfig(**{**QUICK, "samples": 10, "model": onnx_model}, out=None))
    onnx = report["model"]["onnx"]
    assert onnx["rechecked"] == 8 * report["data"]["n_correct"]
    assert onnx["disagreements"] == 0
    assert all(r["prediction_kept"] == 1.0 for r in report["results"])


def test_preset_scales_k_to_the_image(tmp_path):
    report = audit(
        AuditConfig(
            model=DIGITS,
            preset="mnist",
            samples=4,
            steps=2,
            method_params={"ig": {"steps": 4}},
            out=None,
        )
    )
    cfg = report["config"]
    assert cfg["epsilons"] == [0.3] and list(cfg["methods"]) == ["ig"]
    # 200 and 100 of 784 pixels, on 64
    assert cfg["attacks"]["ifia-topk"]["k"] == 16 and cfg["k"] == 8
    assert cfg["steps"] == 2  # a flag wins over the preset
    assert cfg["methods"]["ig"]["steps"] == 4  # and a setting does too


def test_settings_of_entries_reach_the_attack_and_the_report(monkeypatch):
    import dataclasses

    from attrib_audit.registry import ATTACKS

    seen = []
    entry = ATTACKS.get("ifia-topk")

    def spy(*a, **k):
        seen.append((k["k"], k["restarts"]))
        return entry.obj(*a, **k)

    monkeypatch.setitem(ATTACKS._entries, "ifia-topk", dataclasses.replace(entry, obj=spy))
    report = audit(
        AuditConfig(
            **{**QUICK, "samples": 6, "epsilons": [8 / 255], "method_params": {}},
            methods=["sm"],
            attacks=["ifia-topk"],
            attack_params={"ifia-topk": {"k": 5, "restarts": 1}},
            out=None,
        )
    )
    assert seen and set(seen) == {(5, 1)}
    assert report["config"]["attacks"] == {"ifia-topk": {"k": 5, "restarts": 1}}
    assert report["config"]["methods"] == {"sm": {}}


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"method_params": {"ig": {"stepz": 3}}}, r"method_params.ig.stepz is not a setting"),
        ({"method_params": {"ig": {"steps": 0}}}, r"method_params.ig.steps must be >= 1"),
        ({"method_params": {"ig": {"method": "simpson"}}}, r"must be one of riemann_left"),
        ({"method_params": {"igg": {"steps": 3}}}, r"unknown method 'igg' \(did you mean 'ig'"),
        ({"attack_params": {"ifia-topk": {"k": 64}}}, r"attack_params.ifia-topk.k 64 must be"),
        ({"metric_params": {"kendall": {"k": 3}}}, r"metric_params.kendall.k is not a setting"),
    ],
)
def test_bad_settings_are_refused_before_any_attack(settings, message, monkeypatch):
    import attrib_audit.models
    from attrib_audit.errors import SettingError

    audit_module = importlib.import_module("attrib_audit.pipeline")
    monkeypatch.setattr(audit_module, "run_grid", lambda *a, **k: pytest.fail("it ran"))
    if "k" not in str(settings.get("attack_params", {})):  # k's range needs the model's size
        monkeypatch.setattr(attrib_audit.models, "load_model", lambda *a, **k: pytest.fail("load"))
    with pytest.raises(SettingError, match=message):
        audit(AuditConfig(**{**QUICK, **settings}, out=None))


def test_settings_of_a_method_the_audit_does_not_run_are_not_used():
    """One config file can serve audits of different methods."""
    cfg = {**QUICK, "samples": 4, "epsilons": [8 / 255], "methods": ["sm"], "attacks": ["random"]}
    report = audit(AuditConfig(**cfg, out=None))
    assert report["config"]["methods"] == {"sm": {}}


def test_resume_refuses_a_changed_setting_of_an_entry(tmp_path):
    from attrib_audit.errors import AttribAuditError

    def interrupt(done, total, label):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        audit(AuditConfig(**QUICK, out=str(tmp_path)), progress=interrupt)
    changed = {**QUICK, "method_params": {"ig": {"steps": 5}}}
    with pytest.raises(AttribAuditError, match=r"settings changed \(methods.ig.steps 4 -> 5\)"):
        audit(AuditConfig(**changed, out=str(tmp_path), resume=True))


def test_the_callers_config_and_model_are_left_alone():
    import copy

    from attrib_audit.models import load_model

    cfg = AuditConfig(**{**QUICK, "samples": 4, "epsilons": [8 / 255]}, out=None)
    before = copy.deepcopy(cfg)
    audit(cfg)
    assert cfg == before
    loaded = load_model(DIGITS)
    from attrib_audit.device import module_on

    assert module_on(loaded.module, "cpu") is loaded.module
    moved = module_on(loaded.module, "meta")
    assert moved is not loaded.module
    assert next(loaded.module.parameters()).device.type == "cpu"


def test_long_class_lists_are_shortened_in_the_html(quick_report):
    import copy

    from attrib_audit.report.html import render_html
    from attrib_audit.text import brief

    report = copy.deepcopy(quick_report[0])
    names = [f"class-{i}" for i in range(1000)]
    report["model"]["card"]["classes"] = names
    report["config"]["classes"] = names
    html = render_html(report)
    assert html.count("(1000 in all)") == 2 and "class-500" not in html
    assert brief(names[:3]) == "class-0, class-1, class-2" and brief([1, 28, 28]) == "[1, 28, 28]"


def test_unlabelled_samples_say_so_and_labelled_ones_keep_their_label(tmp_path):
    import numpy as np
    import torch

    from attrib_audit.data import load_data

    data = load_data("digits:test", input_shape=(1, 8, 8), value_range=(0.0, 1.0), samples=12)
    x, y = data.get(torch.arange(12))
    np.savez(tmp_path / "unlabelled.npz", x=x.numpy())
    np.savez(tmp_path / "labelled.npz", x=x.numpy(), y=y.numpy())
    cfg = {**QUICK, "samples": None, "epsilons": [8 / 255], "methods": ["sm"]}
    cfg["attacks"] = ["random"]
    unlabelled = audit(AuditConfig(**cfg, data=str(tmp_path / "unlabelled.npz"), out=None))
    labelled = audit(AuditConfig(**cfg, data=str(tmp_path / "labelled.npz"), out=None))
    assert unlabelled["samples"] and {s["label"] for s in unlabelled["samples"]} == {-1}
    truth = {i: int(v) for i, v in enumerate(y)}
    assert labelled["samples"] and all(s["label"] == truth[s["index"]] for s in labelled["samples"])


def test_an_audit_keeps_neither_the_journal_nor_every_cells_gallery_in_memory(tmp_path):
    from attrib_audit.journal import Journal

    header = {"model_sha256": "0" * 64, "data": "d", "settings": {}}
    journal = Journal(tmp_path / JOURNAL, header, resume=False)
    calls = []
    entry = journal.entry("a", lambda: calls.append(1) or {"rows": [1]})
    assert entry == {"cell": "a", "rows": [1]} and journal.done == {} and calls == [1]
    resumed = Journal(tmp_path / JOURNAL, header, resume=True)
    assert resumed.entry("a", lambda: calls.append(2) or {}) == entry and calls == [1]
    assert resumed.done == {}  # read once, then dropped

    import unittest.mock

    import attrib_audit.pipeline as pipeline

    candidates = []
    real = pipeline._attack_cell

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        candidates.extend(out["gallery"])
        return out

    cfg = AuditConfig(**{**QUICK, "samples": 30, "batch_size": 6, "gallery": 2}, out=None)
    cfg.methods = ["sm"]
    with unittest.mock.patch.object(pipeline, "_attack_cell", spy):
        grid = pipeline.run_grid(pipeline.plan(cfg, torch.device("cpu")), Journal(None, {}, False))
    assert len(candidates) > 2  # every cell offers its worst samples ...
    # ... and only the worst of all are kept as the audit goes
    assert grid.gallery["sm"] == sorted(candidates, key=pipeline._gallery_key)[:2]
