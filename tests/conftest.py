from __future__ import annotations

import pytest
import torch
from torch import nn


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` run wherever CUDA is available and are skipped elsewhere (CI)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


class TinyCNN(nn.Module):
    """A small conv net; ``act`` picks the activation (ReLU or a smooth one)."""

    def __init__(self, act: type[nn.Module] = nn.ReLU, channels: int = 1, classes: int = 3):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, 4, 3, padding=1),
            act(),
            nn.Conv2d(4, 4, 3, stride=2, padding=1),
            act(),
            nn.Flatten(),
            nn.Linear(4 * 3 * 3, classes),
        )

    def forward(self, x):
        return self.net(x)


def tiny_cnn(act: type[nn.Module] = nn.ReLU, seed: int = 0, dtype=torch.float64) -> nn.Module:
    torch.manual_seed(seed)
    return TinyCNN(act).to(dtype).eval()


@pytest.fixture
def relu_cnn() -> nn.Module:
    return tiny_cnn(nn.ReLU)


@pytest.fixture
def smooth_cnn() -> nn.Module:
    return tiny_cnn(nn.Tanh)


@pytest.fixture
def images() -> torch.Tensor:
    """(4, 1, 6, 6) float64 in [0, 1]."""
    return torch.rand(4, 1, 6, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


@pytest.fixture(scope="session")
def digits_model():
    from attrib_audit.models import load_model, sample_model

    return load_model(sample_model("digits-cnn", "pt"))


@pytest.fixture(scope="session")
def digits_data():
    from attrib_audit.data import load_data

    return load_data("digits:test", input_shape=(1, 8, 8), value_range=(0.0, 1.0))
