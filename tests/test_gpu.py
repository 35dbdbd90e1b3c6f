"""The CUDA paths: run wherever a GPU is available (marked ``gpu``; skipped elsewhere, so CI
stays CPU-only). Each compares with the CPU or with itself, never with a fixed number."""

import json
import os
import subprocess
import sys
from functools import partial

import pytest
import torch
from typer.testing import CliRunner

from attrib_audit.attacks import ifia_topk
from attrib_audit.attributions import integrated_gradients, saliency
from attrib_audit.cli import app
from attrib_audit.models import sample_model, smooth_surrogate

pytestmark = pytest.mark.gpu
runner = CliRunner()
DIGITS = str(sample_model("digits-cnn", "pt"))
QUICK = ["--data", "digits", "--samples", "64", "--methods", "sm,ig", "--epsilon", "8/255"]
QUICK += ["--method-param", "ig.steps=8", "--steps", "5", "--format", "json"]


def _audit(out, *args: str) -> dict:
    result = runner.invoke(app, ["audit", *args, *QUICK, "--out", str(out)])
    assert result.exit_code == 0, result.output
    return json.loads((out / "report.json").read_text())


def test_an_audit_on_the_gpu_agrees_with_the_cpu(tmp_path):
    gpu = _audit(tmp_path / "gpu", DIGITS, "--device", "cuda")
    cpu = _audit(tmp_path / "cpu", DIGITS, "--device", "cpu")
    assert gpu["execution"]["devices"][0].startswith("cuda")
    assert gpu["evidence"]["conclusive"] and gpu["data"] == cpu["data"]
    # signed steps amplify float differences, so the iterates differ; the verdict may not
    for method, metrics in cpu["summary"].items():
        for name in ("topk_intersection", "spearman"):
            assert gpu["summary"][method][name] == pytest.approx(metrics[name], abs=0.1)


def test_deterministic_gpu_audits_give_the_same_floats(tmp_path):
    one = _audit(tmp_path / "one", DIGITS, "--device", "cuda", "--deterministic")
    two = _audit(tmp_path / "two", DIGITS, "--device", "cuda", "--deterministic")
    assert one["samples"] == two["samples"] and len(one["samples"]) > 0


def test_an_onnx_audit_on_the_gpu_rechecks_on_onnxruntime(tmp_path):
    report = _audit(tmp_path / "onnx", str(sample_model("digits-cnn", "onnx")), "--device", "cuda")
    assert report["model"]["onnx"]["rechecked"] > 0
    assert report["model"]["onnx"]["disagreements"] <= 0.02 * report["model"]["onnx"]["rechecked"]


@pytest.mark.parametrize("method", [saliency, partial(integrated_gradients, steps=8)])
def test_the_attack_loop_never_waits_for_the_gpu(digits_model, digits_data, method):
    model = digits_model.module.to("cuda").eval()
    surrogate = smooth_surrogate(model, 10.0)
    x = digits_data.x[:32].to("cuda")
    with torch.no_grad():
        target = model(x).argmax(1)
    kwargs = {"epsilon": 0.1, "steps": 3, "step_size": 0.03, "k": 8, "seed": 0}
    ifia_topk(model, surrogate, x, target, method, **kwargs)  # warm-up: one-off measurements
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        x_adv = ifia_topk(model, surrogate, x, target, method, **kwargs)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert x_adv.device.type == "cuda" and x_adv.shape == x.shape


@pytest.mark.skipif(
    not torch.cuda.is_available() or torch.cuda.device_count() < 2, reason="needs two GPUs"
)
def test_two_nccl_ranks_give_the_single_gpu_report(tmp_path):
    base = [sys.executable, "-m", "attrib_audit", "audit", DIGITS, *QUICK, "--device", "cuda"]
    sharded = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    sharded += ["--master_port", "29537", *base[1:]]
    for name, cmd in (("two", sharded), ("one", base)):
        proc = subprocess.run(
            [*cmd, "--deterministic", "--out", str(tmp_path / name)],
            capture_output=True,
            text=True,
            env=os.environ.copy(),
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads((tmp_path / "two" / "report.json").read_text())
    one = json.loads((tmp_path / "one" / "report.json").read_text())
    assert two["execution"] == {"processes": 2, "devices": ["cuda:0", "cuda:1"]}
    assert len(two["samples"]) == len(one["samples"]) > 0
