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
