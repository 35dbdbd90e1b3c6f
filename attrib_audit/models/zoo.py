"""Architectures of the bundled sample models, importable as ``attrib_audit.models.zoo:NAME``."""

from __future__ import annotations

from torch import nn


def digits_cnn(num_classes: int = 10) -> nn.Module:
    """A small CNN for scikit-learn's 8x8 digits.

    Shape:
        x: (B, 1, 8, 8)
        returns: (B, num_classes)
    """
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 64),
        nn.ReLU(),
        nn.Linear(64, num_classes),
    )


def fashion_mnist_cnn(num_classes: int = 10, hidden: int = 128) -> nn.Module:
    """The MNIST/Fashion-MNIST network of RAR and CACR: two 5x5 convolutions with 32 and 64
    filters, each followed by 2x2 max-pooling, then a fully connected layer. The papers' hidden
    layer has 1024 units; 128 keeps the checkpoint under 2 MB (the bundled models must stay
    under 5 MB, and 1024 units would make it ~13 MB).

    Shape:
        x: (B, 1, 28, 28)
        returns: (B, num_classes)
    """
    return nn.Sequential(
        nn.Conv2d(1, 32, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, hidden),
        nn.ReLU(),
        nn.Linear(hidden, num_classes),
    )


# what a checkpoint's card may name here without --trust-checkpoint (models/arch.py)
FACTORIES = ("digits_cnn", "fashion_mnist_cnn")
