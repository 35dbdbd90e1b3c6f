"""The README's commands and examples are what CI and users run: keep them honest."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(lang):
    return re.findall(rf"```{lang}\n(.*?)```", README, re.S)


def test_ci_runs_the_readme_test_command_verbatim():
    quickstart = _blocks("bash")[:2]
    assert len(quickstart) == 2
    test_command = quickstart[1].strip()
    assert "pytest" in test_command
    assert test_command in (ROOT / ".ci" / "run").read_text()


def test_the_python_example_runs(monkeypatch):
    monkeypatch.chdir(ROOT)
    (example,) = [b for b in _blocks("python") if "import attrib_audit" in b]
    scope: dict = {}
    exec(compile(example, "README.md", "exec"), scope)
    assert tuple(scope["maps"].shape) == (16, 1, 8, 8)


def test_the_config_file_example_sets_entries_and_their_settings(tmp_path):
    import json

    from typer.testing import CliRunner

    from attrib_audit.cli import app
    from attrib_audit.models import sample_model

    (example,) = [b for b in _blocks("toml") if "[methods.ig]" in b]
    config = tmp_path / "audit.toml"
    config.write_text(example)
    out = tmp_path / "r"
    args = ["audit", str(sample_model("digits-cnn", "pt")), "--config", str(config)]
    args += ["--samples", "4", "--steps", "1", "--epsilon", "8/255", "--format", "json"]
    result = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    cfg = json.loads((out / "report.json").read_text())["config"]
    assert cfg["methods"]["sm"] == {}
    assert cfg["methods"]["ig"] == {"steps": 32, "method": "gausslegendre", "baseline": "zeros"}
    assert list(cfg["attacks"]) == ["ifia-topk"] and cfg["attacks"]["ifia-topk"]["restarts"] == 1
    assert cfg["samples"] == 4  # a flag wins over the file
