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

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from attrib_audit.data import FASHION_MNIST_CLASSES, load_data, read_idx
from attrib_audit.data.sources import FASHION_MNIST_DIR, SLICE_PATH
from attrib_audit.models import ModelCard, load_model
from attrib_audit.models.export import save_model
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
    shutil.copy(work / "out" / "model.pt", HERE / "model.pt")
    loaded = load_model(HERE / "model.pt", card=work / "init.toml")
    test = load_data("fashion-mnist:test", input_shape=(1, 28, 28), value_range=(0.0, 1.0))
    part = load_data("fashion-mnist:slice", input_shape=(1, 28, 28), value_range=(0.0, 1.0))
    with torch.no_grad():
        acc = (loaded.predict(test.x).argmax(1) == test.y).float().mean().item()
        acc_slice = (loaded.predict(part.x).argmax(1) == part.y).float().mean().item()
    save_model(loaded.module.inner, CARD, "onnx", HERE / "model.onnx", probe=test.x[:4])
    (HERE / "model.toml").write_text(  # the card save_model wrote, with the accuracy noted
        f"# fashion-mnist:test accuracy {acc:.4f} (10,000 images); made by train.py\n"
        f"# fashion-mnist:slice accuracy {acc_slice:.4f} (1,000 images)\n" + CARD.to_toml()
    )
    onnx_acc = load_model(HERE / "model.onnx").predict(test.x).argmax(1) == test.y
    print(f"test accuracy: state_dict {acc:.4f}, onnx {onnx_acc.float().mean().item():.4f}")


if __name__ == "__main__":
    main()
