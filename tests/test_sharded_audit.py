"""An audit under torchrun: two gloo processes split the batches, rank 0 writes one report,
and its per-sample rows equal a single process's at the same seed."""

import json
import os
import subprocess
import sys

import pytest

from attrib_audit.models import sample_model

DIGITS = str(sample_model("digits-cnn", "pt"))
ARGS = [
    "audit",
    DIGITS,
    "--samples",
    "40",
    "--batch-size",
    "8",  # five batches: rank 0 audits three, rank 1 two
    "--methods",
    "sm,ig",
    "--method-param",
    "ig.steps=4",
    "--attacks",
    "ifia-topk,random",
    "--epsilon",
    "8/255",
    "--steps",
    "3",
    "--device",
    "cpu",
    "--format",
    "json",
]


def _audit(out, *, processes: int):
    launcher = [sys.executable, "-m", "attrib_audit"]
    if processes > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node"]
        launcher += [str(processes), "--master_port", "29533", "-m", "attrib_audit"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the same threads, so the same floats
    proc = subprocess.run(
        [*launcher, *ARGS, "--out", str(out)], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "report.json").read_text()), proc


@pytest.mark.slow
def test_two_gloo_processes_give_the_single_process_report(tmp_path):
    sharded, proc = _audit(tmp_path / "two", processes=2)
    single, _ = _audit(tmp_path / "one", processes=1)
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["report.json"]  # journals gone
    assert proc.stdout.count("wrote") == 1  # rank 0 reports, once
    assert sharded["execution"] == {"processes": 2, "devices": ["cpu", "cpu"]}
    assert single["execution"] == {"processes": 1, "devices": ["cpu"]}
    assert len(sharded["samples"]) == len(single["samples"]) > 0
    assert sharded["samples"] == single["samples"]
    assert sharded["summary"] == single["summary"] and sharded["data"] == single["data"]
    assert {s["index"] for s in sharded["samples"]} >= {0, 39}  # both ranks' batches
