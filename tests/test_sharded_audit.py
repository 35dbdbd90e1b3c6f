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


def _rank(rank: int, world: int, port: int, cfg: dict, interrupt_after: dict, log: str) -> None:
    """One torchrun-like rank in a spawned process: counts the cells it computes (into
    ``log``), and stops with Ctrl-C after ``interrupt_after[rank]`` of them when given."""
    import torch

    from attrib_audit import pipeline
    from attrib_audit.config import AuditConfig

    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1"
    )
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)  # the same threads in every run, so the same floats
    real, computed = pipeline._attack_cell, []

    def cell(*args, **kwargs):
        if len(computed) == interrupt_after.get(rank, -1):
            raise KeyboardInterrupt
        computed.append(args[2:5])
        return real(*args, **kwargs)

    pipeline._attack_cell = cell
    try:
        pipeline.audit(AuditConfig(**cfg))
    except KeyboardInterrupt:
        pass
    finally:
        with open(f"{log}.rank{rank}", "w") as f:
            f.write(str(len(computed)))


def _spawned(cfg: dict, tmp_path, name: str, port: int, interrupt_after=None) -> list[int]:
    import torch.multiprocessing as mp

    log = str(tmp_path / name)
    mp.spawn(_rank, args=(2, port, cfg, interrupt_after or {}, log), nprocs=2, join=True)
    return [int(open(f"{log}.rank{r}").read()) for r in range(2)]


@pytest.mark.slow
def test_an_interrupted_sharded_audit_resumes_rank_by_rank(tmp_path):
    from attrib_audit.journal import JOURNAL

    base = {
        "model": DIGITS,
        "data": "digits",
        "samples": 24,
        "batch_size": 8,  # three batches: rank 0 audits 0 and 2 (8 cells), rank 1 audits 1 (4)
        "methods": ["sm", "ig"],
        "method_params": {"ig": {"steps": 4}},
        "attacks": ["ifia-topk", "random"],
        "epsilons": [8 / 255],
        "steps": 3,
        "device": "cpu",
        "formats": ["json"],
    }
    whole = {**base, "out": str(tmp_path / "whole")}
    assert _spawned(whole, tmp_path, "whole", 29541) == [8, 4]
    cut = {**base, "out": str(tmp_path / "cut")}
    assert _spawned(cut, tmp_path, "cut", 29542, interrupt_after={0: 3, 1: 2}) == [3, 2]
    journals = sorted(p.name for p in (tmp_path / "cut").iterdir())
    names = [JOURNAL.replace(".jsonl", f".rank{r}-of-2.jsonl") for r in range(2)]
    assert journals == sorted(names)  # each rank kept its own journal, and no report
    redone = _spawned({**cut, "resume": True}, tmp_path, "resumed", 29543)
    assert redone == [8 - 3, 4 - 2]  # each rank reran only the cells its journal lacked
    a = json.loads((tmp_path / "whole" / "report.json").read_text())
    b = json.loads((tmp_path / "cut" / "report.json").read_text())
    assert b["samples"] == a["samples"] and len(a["samples"]) > 0
    assert b["summary"] == a["summary"] and b["execution"] == a["execution"]
    assert sorted(p.name for p in (tmp_path / "cut").iterdir()) == ["report.json"]
