"""The example plugins in plugins/, installed through the entry point machinery: they list,
and run in an audit by name."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from attrib_audit.cli import app
from attrib_audit.registry import REGISTRIES

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _install(tmp_path, monkeypatch, dist, package_dir, entry_points):
    """A distribution on sys.path: the package's source plus a .dist-info with its entry
    points, as `pip install -e` would leave them."""
    info = tmp_path / f"{dist.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(entry_points)
    monkeypatch.syspath_prepend(str(tmp_path))
    if package_dir is not None:
        monkeypatch.syspath_prepend(str(package_dir))


@pytest.fixture
def plugins_installed(tmp_path, monkeypatch):
    _install(
        tmp_path / "a",
        monkeypatch,
        "attrib-audit-vargrad",
        ROOT / "plugins" / "attrib-audit-vargrad",
        "[attrib_audit.methods]\nvargrad = attrib_audit_vargrad:vargrad\n",
    )
    _install(
        tmp_path / "b",
        monkeypatch,
        "attrib-audit-ssim",
        ROOT / "plugins" / "attrib-audit-ssim",
        "[attrib_audit.metrics]\nssim = attrib_audit_ssim:ssim\n",
    )
    for r in REGISTRIES.values():
        r.reset()
    yield
    monkeypatch.undo()
    for r in REGISTRIES.values():
        r.reset()


def test_plugins_list_with_source_and_version(plugins_installed):
    result = runner.invoke(app, ["plugins"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    vargrad = next(line for line in lines if " vargrad " in line)
    assert "attrib-audit-vargrad" in vargrad and "0.1.0" in vargrad and "yes" in vargrad
    assert any(" ssim " in line and "attrib-audit-ssim" in line for line in lines)
    result = runner.invoke(app, ["plugins", "--settings"])
    assert result.exit_code == 0, result.output
    assert "method vargrad (title=VarGrad, create_graph=True, stochastic=True)" in result.stdout
    assert "--method-param vargrad.samples=20  (int)  noise samples" in result.stdout
    assert "--metric-param ssim.window=7  (int)" in result.stdout


def test_plugins_run_in_an_audit_by_name(plugins_installed, tmp_path):
    result = runner.invoke(
        app,
        [
            "audit",
            "--methods",
            "sm,vargrad",
            "--metrics",
            "topk_intersection,ssim",
            "--samples",
            "8",
            "--steps",
            "2",
            "--epsilon",
            "4/255,8/255",
            "--format",
            "json",
            "--require",
            "vargrad.ssim>=0",
            "--out",
            str(tmp_path / "r"),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert set(report["summary"]) == {"sm", "vargrad"}
    assert set(report["summary"]["vargrad"]) == {"topk_intersection", "ssim"}
    assert 0 < report["summary"]["vargrad"]["ssim"] <= 1


def test_a_broken_plugin_is_reported_and_breaks_nothing(tmp_path, monkeypatch):
    _install(
        tmp_path,
        monkeypatch,
        "attrib-audit-broken",
        None,
        "[attrib_audit.metrics]\nbroken = attrib_audit_no_such_module:thing\n",
    )
    for r in REGISTRIES.values():
        r.reset()
    try:
        result = runner.invoke(app, ["plugins"])
        assert result.exit_code == 0
        assert "metric plugin 'broken' from attrib-audit-broken failed to load" in result.stderr
        assert "ModuleNotFoundError" in result.stderr
        assert (
            runner.invoke(
                app, ["inspect", str(ROOT / "sample_models/digits-cnn/model.pt"), "--json"]
            ).exit_code
            == 0
        )
    finally:
        monkeypatch.undo()
        for r in REGISTRIES.values():
            r.reset()


def test_a_plugin_claiming_a_taken_name_is_an_error_naming_both(tmp_path, monkeypatch):
    _install(
        tmp_path,
        monkeypatch,
        "attrib-audit-copycat",
        None,
        "[attrib_audit.methods]\nig = torch:relu\n",
    )
    for r in REGISTRIES.values():
        r.reset()
    try:
        result = runner.invoke(app, ["plugins"])
        assert result.exit_code == 2
        assert "'ig' is claimed twice: by attrib-audit and by attrib-audit-copycat" in result.stderr
    finally:
        monkeypatch.undo()
        for r in REGISTRIES.values():
            r.reset()


def test_plugin_settings_are_reachable_from_the_command_line_and_the_config(
    plugins_installed, tmp_path
):
    common = ["audit", "--samples", "6", "--steps", "2", "--epsilon", "8/255", "--format", "json"]
    common += ["--attacks", "ifia-topk", "--metrics", "topk_intersection,ssim"]
    result = runner.invoke(
        app,
        [
            *common,
            "--methods",
            "vargrad",
            "--method-param",
            "vargrad.samples=3",
            "--method-param",
            "vargrad.sigma=0.05",
            "--metric-param",
            "ssim.window=5",
            "--out",
            str(tmp_path / "flags"),
        ],
    )
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "flags" / "report.json").read_text())["config"]
    assert config["methods"] == {"vargrad": {"samples": 3, "sigma": 0.05}}
    assert config["metrics"]["ssim"] == {"window": 5, "sigma": 1.5}

    toml = tmp_path / "audit.toml"
    toml.write_text("[methods.vargrad]\nsamples = 2\n\n[metrics.ssim]\nwindow = 3\n")
    result = runner.invoke(app, [*common, "--config", str(toml), "--out", str(tmp_path / "t")])
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "t" / "report.json").read_text())["config"]
    assert config["methods"] == {"vargrad": {"samples": 2, "sigma": 0.15}}
    assert config["metrics"] == {"topk_intersection": {}, "ssim": {"window": 3, "sigma": 1.5}}

    result = runner.invoke(
        app, [*common, "--methods", "vargrad", "--method-param", "vargrad.samples=0"]
    )
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: --method-param vargrad.samples must be >= 1, got 0"


@pytest.mark.parametrize("name", ["attrib-audit-vargrad", "attrib-audit-ssim"])
def test_each_example_plugin_passes_its_own_tests(name):
    import os
    import subprocess
    import sys

    root = ROOT / "plugins" / name
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(ROOT)])}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(root / "tests")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout


def test_a_loader_plugin_claims_its_suffix(tmp_path, monkeypatch):
    """A plugin loader for '.tinyjson' files: a linear model written as JSON."""
    import torch

    pkg = tmp_path / "src"
    pkg.mkdir()
    (pkg / "tinyjson_loader.py").write_text(
        "import json\nimport torch\nfrom attrib_audit.registry import LOADERS\n"
        "@LOADERS.declare('tinyjson', suffixes=('.tinyjson',))\n"
        "def load(path, card, *, trust=False):\n"
        "    w = torch.tensor(json.loads(path.read_text()))\n"
        "    m = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(w.shape[1], w.shape[0],"
        " bias=False))\n"
        "    m[1].weight.data = w\n"
        "    return m\n"
    )
    _install(
        tmp_path / "dist",
        monkeypatch,
        "attrib-audit-tinyjson",
        pkg,
        "[attrib_audit.loaders]\ntinyjson = tinyjson_loader:load\n",
    )
    for r in REGISTRIES.values():
        r.reset()
    try:
        from attrib_audit import load_model

        path = tmp_path / "m.tinyjson"
        path.write_text("[[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]]")
        loaded = load_model(path, input_shape=(1, 2, 2), value_range=(0.0, 1.0))
        assert loaded.format == "tinyjson" and loaded.card.classes == ("0", "1")
        x = torch.tensor([[[[0.2, 0.7], [0.1, 0.0]]]])
        torch.testing.assert_close(loaded.module(x), torch.tensor([[0.2, 0.7]]))
    finally:
        monkeypatch.undo()
        for r in REGISTRIES.values():
            r.reset()
