"""Fine-tune the natural Fashion-MNIST sample model into the robust one.

Reproduce (needs `apt-get install -y dataset-fashion-mnist`; wall time in model.toml's header
and docs/REPRODUCTION.md):

    python sample_models/fashion-mnist-robust/train.py

Runs `attrib-audit finetune` itself on `sample_models/fashion-mnist-natural/model.pt` with the
objective and budget below (the best of the objectives compared in docs/REPRODUCTION.md, all
under the same budget), then writes model.pt, model.onnx (verified with onnxruntime) and
model.toml here. Seeded: the same command gives the same weights on the same machine.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from attrib_audit.models import load_model
from attrib_audit.models.bundled import publish_sample_model, sample_model

HERE = Path(__file__).resolve().parent
FINETUNE = [
    "--objective",
    "cacr-wacr",
    "--data",
    "fashion-mnist:train",
    "--steps",
    "50",
    "--seed",
    "0",
    "--no-audit",
]


def main() -> None:
    natural = sample_model("fashion-mnist-natural")
    card = load_model(natural).card
    work = Path(tempfile.mkdtemp())
    cmd = [sys.executable, "-m", "attrib_audit", "finetune", str(natural), *FINETUNE]
    t0 = time.perf_counter()
    subprocess.run([*cmd, "--out", str(work / "out")], check=True)
    minutes = (time.perf_counter() - t0) / 60
    robust = dataclasses.replace(card, name="fashion-mnist-robust")
    publish_sample_model(
        work / "out" / "model.pt",
        robust,
        HERE,
        test="fashion-mnist:test",
        also="fashion-mnist:slice",
    )
    print(f"fine-tuned in {minutes:.1f} min: attrib-audit finetune ... {' '.join(FINETUNE)}")


if __name__ == "__main__":
    main()
