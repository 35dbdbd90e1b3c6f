"""``--device`` and ``--deterministic``."""

import json

import pytest
import torch
from typer.testing import CliRunner

from attrib_audit.cli import app
from attrib_audit.device import deterministic
from attrib_audit.errors import AttribAuditError
from attrib_audit.models import sample_model

DIGITS = str(sample_model("digits-cnn", "pt"))
QUICK = ["--data", "digits", "--samples", "16", "--methods", "sm", "--epsilon", "8/255"]
QUICK += ["--steps", "2", "--device", "cpu", "--format", "json"]


def test_deterministic_is_on_inside_and_the_callers_settings_come_back():
    before = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    with deterministic(True):
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark) == before
    with deterministic(False):
        assert torch.are_deterministic_algorithms_enabled() == before[0]


def test_an_operation_without_a_deterministic_implementation_is_a_clear_error():
    t = torch.zeros(4)
    expected = r"^put_ has no deterministic .* deterministic$"
    with pytest.raises(AttribAuditError, match=expected), deterministic(True):
        t.put_(torch.tensor([0, 1]), torch.tensor([1.0, 2.0]))  # nondeterministic anywhere
    assert not torch.are_deterministic_algorithms_enabled()
    with pytest.raises(RuntimeError, match="unrelated"), deterministic(True):
        raise RuntimeError("unrelated")  # other errors pass through as they are


def test_audit_with_deterministic_gives_the_same_report_and_records_it(tmp_path):
    runner = CliRunner()
    reports = {}
    for flag in ([], ["--deterministic"]):
        out = tmp_path / ("det" if flag else "plain")
        result = runner.invoke(app, ["audit", DIGITS, *QUICK, *flag, "--out", str(out)])
        assert result.exit_code == 0, result.output
        reports[bool(flag)] = json.loads((out / "report.json").read_text())
    assert reports[True]["config"]["deterministic"] is True
    assert reports[False]["config"]["deterministic"] is False
    assert reports[True]["samples"] == reports[False]["samples"]
    assert not torch.are_deterministic_algorithms_enabled()
