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
