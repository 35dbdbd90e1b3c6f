"""Make the bundled Fashion-MNIST slice and train the natural Fashion-MNIST sample model.

Reproduce (about 4 minutes on 2 CPU cores; needs `apt-get install -y dataset-fashion-mnist`):

    python sample_models/fashion-mnist-natural/train.py

1. Writes attrib_audit/data/fashion_mnist_slice.npz: the first 1,000 images of the
   Fashion-MNIST test set with their labels (MIT licence, Zalando Research).
2. Initialises the RAR/CACR Fashion-MNIST architecture (seed 0) and trains it with
   `attrib-audit finetune --objective natural` itself: 4 epochs of fashion-mnist:train,
   batch 64, Adam 1e-3 with a cosine schedule.
3. Writes model.pt, model.toml and model.onnx (same weights, verified with onnxruntime) here.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from attrib_audit.data import FASHION_MNIST_CLASSES, read_idx
from attrib_audit.data.sources import FASHION_MNIST_DIR, SLICE_PATH
from attrib_audit.models import ModelCard
from attrib_audit.models.bundled import publish_sample_model
from attrib_audit.models.zoo import fashion_mnist_cnn

HERE = Path(__file__).resolve().parent
SEED = 0
CARD = ModelCard(
    name="fashion-mnist-natural",
    arch="attrib_audit.models.zoo:fashion_mnist_cnn",
    arch_kwargs={"num_classes": 10, "hidden": 128},
    input_shape=(1, 28, 28),
    value_range=(0.0, 1.0),
    classes=FASHION_MNIST_CLASSES,
)
TRAIN = [
    "--objective",
    "natural",
    "--data",
    "fashion-mnist:train",
    "--epochs",
    "4",
    "--batch-size",
    "64",
    "--lr",
    "1e-3",
    "--schedule",
    "cosine",
    "--seed",
    str(SEED),
    "--no-audit",
]


def make_slice() -> None:
    images = read_idx(FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz")[:1000]
    labels = read_idx(FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz")[:1000]
    np.savez_compressed(SLICE_PATH, x=images, y=labels.astype(np.int64))
    print(f"wrote {SLICE_PATH} ({SLICE_PATH.stat().st_size} bytes)")


def main() -> None:
    make_slice()
    work = Path(tempfile.mkdtemp())
    torch.manual_seed(SEED)
    torch.save(fashion_mnist_cnn(10, 128).state_dict(), work / "init.pt")
    (work / "init.toml").write_text(CARD.to_toml())
    subprocess.run(
        [
            sys.executable,
            "-m",
            "attrib_audit",
            "finetune",
            str(work / "init.pt"),
            *TRAIN,
            "--out",
            str(work / "out"),
        ],
        check=True,
    )
    publish_sample_model(
        work / "out" / "model.pt", CARD, HERE, test="fashion-mnist:test", also="fashion-mnist:slice"
    )


if __name__ == "__main__":
    main()
