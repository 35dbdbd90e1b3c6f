import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from attrib_audit.cli import app
from attrib_audit.errors import AttribAuditError
from attrib_audit.models import load_model, sample_model
from attrib_audit.training import STATE, FinetuneConfig, finetune

DIGITS = str(sample_model("digits-cnn", "pt"))
QUICK = {
    "samples": 96,
    "batch_size": 16,
    "audit": False,
    "params": {"epsilon": 0.1, "steps": 2, "step_size": 0.05, "m_attack": 3, "m_grad": 3},
}
runner = CliRunner()


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def test_resume_after_an_interruption_equals_an_uninterrupted_run(tmp_path):
    whole = finetune(
        FinetuneConfig(model=DIGITS, steps=5, checkpoint_every=2, out=str(tmp_path / "a"), **QUICK)
    )

    def interrupt(done, total, terms):
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        finetune(
            FinetuneConfig(
                model=DIGITS, steps=5, checkpoint_every=2, out=str(tmp_path / "b"), **QUICK
            ),
            progress=interrupt,
        )
    assert torch.load(tmp_path / "b" / STATE, weights_only=True)["step"] == 2
    assert not (tmp_path / "b" / "model.pt").exists()
    resumed = finetune(
        FinetuneConfig(
            model=DIGITS, steps=5, checkpoint_every=2, resume=True, out=str(tmp_path / "b"), **QUICK
        )
    )
    a, b = _weights(whole.checkpoint), _weights(resumed.checkpoint)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)  # bit for bit
    before = _weights(DIGITS)
    assert any(not torch.equal(a[k], before[k]) for k in a)  # and it did train


def test_output_keeps_the_format_and_never_overwrites_the_input(tmp_path):
    onnx_in = sample_model("digits-cnn", "onnx")
    result = finetune(
        FinetuneConfig(
            model=str(onnx_in),
            objective="natural",
            steps=2,
            data="digits:train",
            out=str(tmp_path),
            **{**QUICK, "params": {}},
        )
    )
    assert result.checkpoint.name == "model.onnx"
    reloaded = load_model(result.checkpoint)  # verified against onnxruntime on load
    assert reloaded.format == "onnx" and reloaded.card.name == "digits-cnn-natural"
    with pytest.raises(AttribAuditError, match="overwrite the input"):
        finetune(FinetuneConfig(model=DIGITS, steps=1, out=str(Path(DIGITS).parent), **QUICK))


def test_train_surrogate_writes_the_original_architecture(tmp_path):
    result = finetune(
        FinetuneConfig(
            model=DIGITS,
            objective="ig-norm",
            steps=2,
            train_surrogate=True,
            out=str(tmp_path),
            **QUICK,
        )
    )
    assert _weights(result.checkpoint).keys() == _weights(DIGITS).keys()
    load_model(result.checkpoint)


def test_bad_options_are_clear_errors(tmp_path):
    result = runner.invoke(
        app, ["finetune", DIGITS, "--param", "lamda=2", "--steps", "1", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2 and "--param lamda is not a setting of ig-norm" in result.stderr
    result = runner.invoke(
        app, ["finetune", DIGITS, "--objective", "igg", "--steps", "1", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2 and "valid names: cacr-wacr, ig-norm" in result.stderr
    result = runner.invoke(app, ["finetune", DIGITS, "--resume", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "nothing to resume" in result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_a_clear_error(tmp_path):
    result = runner.invoke(
        app, ["finetune", DIGITS, "--device", "cuda", "--steps", "1", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2 and "no CUDA device is available" in result.stderr


@pytest.mark.gpu
def test_gpu_finetune_runs_and_matches_the_cpu_loss(tmp_path):
    cpu = finetune(
        FinetuneConfig(model=DIGITS, steps=2, device="cpu", out=str(tmp_path / "cpu"), **QUICK)
    )
    gpu = finetune(
        FinetuneConfig(model=DIGITS, steps=2, device="cuda", out=str(tmp_path / "gpu"), **QUICK)
    )
    for k, v in cpu.last_terms.items():
        assert gpu.last_terms[k] == pytest.approx(v, rel=1e-3, abs=1e-4)


def test_two_process_gloo_run_under_torchrun(tmp_path):
    args = [
        "finetune",
        DIGITS,
        "--objective",
        "ig-norm",
        "--steps",
        "2",
        "--samples",
        "64",
        "--batch-size",
        "16",
        "--param",
        "steps=2",
        "--param",
        "m_attack=3",
        "--param",
        "m_grad=3",
        "--no-audit",
        "--device",
        "cpu",
    ]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            "29531",
            "-m",
            "attrib_audit",
            *args,
            "--out",
            str(tmp_path / "ddp"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    written = sorted(p.name for p in (tmp_path / "ddp").iterdir())
    assert written == ["model.pt", "model.toml", STATE]  # rank 0 wrote, once
    single = finetune(FinetuneConfig(model=DIGITS, steps=2, out=str(tmp_path / "one"), **QUICK))
    a, b = _weights(tmp_path / "ddp" / "model.pt"), _weights(single.checkpoint)
    assert a.keys() == b.keys() and all(a[k].shape == b[k].shape for k in a)


def test_unlabelled_data_is_refused(tmp_path):
    import numpy as np
    from PIL import Image

    for i in range(4):
        Image.fromarray(np.full((8, 8), 30 * i, dtype=np.uint8)).save(tmp_path / f"{i}.png")
    with pytest.raises(AttribAuditError, match="unlabelled samples"):
        finetune(
            FinetuneConfig(
                model=DIGITS,
                data=str(tmp_path),
                steps=1,
                out=str(tmp_path / "o"),
                **{**QUICK, "samples": None},
            )
        )
