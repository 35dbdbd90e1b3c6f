"""docs/API.md's examples run, in order, in one namespace."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_api_examples_run(monkeypatch):
    monkeypatch.chdir(ROOT)
    text = (ROOT / "docs" / "API.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) == 5
    scope: dict = {}
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/API.md example {i + 1}", "exec"), scope)
    for name in ("load_model", "attribute", "audit", "gate", "finetune"):
        assert f"## `{name}(" in text
