"""The bundled Fashion-MNIST slice and the natural Fashion-MNIST sample model."""

import re

import numpy as np
import pytest
import torch

from attrib_audit.data import FASHION_MNIST_CLASSES, load_data
from attrib_audit.data import sources as sources_module
from attrib_audit.models import load_model, sample_model

CARD = {"input_shape": (1, 28, 28), "value_range": (0.0, 1.0)}


def test_the_slice_loads_with_shapes_labels_and_range():
    data = load_data("fashion-mnist:slice", **CARD)
    assert len(data) == 1000 and data.classes == FASHION_MNIST_CLASSES
    assert data.x.shape == (1000, 1, 28, 28) and data.x.dtype == torch.float32
    assert data.x.min() >= 0 and data.x.max() <= 1 and data.x.max() == 1
    assert set(data.y.tolist()) == set(range(10))


@pytest.mark.skipif(
    not (sources_module.FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file(),
    reason="needs apt-get install -y dataset-fashion-mnist",
)
def test_the_slice_is_the_first_thousand_test_images():
    part = load_data("fashion-mnist:slice", **CARD)
    full = load_data("fashion-mnist:test", samples=1000, **CARD)
    assert torch.equal(part.x, full.x) and torch.equal(part.y, full.y)


def _stated(path, split):
    text = path.with_suffix(".toml").read_text()
    return float(re.search(rf"# fashion-mnist:{split} accuracy ([0-9.]+)", text).group(1))


@pytest.mark.parametrize("fmt", ["pt", "onnx"])
def test_the_natural_model_loads_and_reaches_its_stated_accuracy(fmt):
    path = sample_model("fashion-mnist-natural", fmt)
    model = load_model(path)
    assert model.card.classes == FASHION_MNIST_CLASSES
    data = load_data("fashion-mnist:slice", **CARD)
    acc = (model.predict(data.x).argmax(1) == data.y).float().mean().item()
    stated = _stated(path, "slice")
    # the same weights on the same 1,000 images: at most 2 images may flip across platforms
    assert abs(acc - stated) <= 0.002
    assert _stated(path, "test") >= 0.90


def test_the_sample_model_files_stay_small():
    for fmt in ("pt", "onnx"):
        assert sample_model("fashion-mnist-natural", fmt).stat().st_size < 5 * 2**20
    assert sources_module.SLICE_PATH.stat().st_size < 2**20
    assert np.load(sources_module.SLICE_PATH)["x"].dtype == np.uint8


def test_the_default_audit_runs_end_to_end(tmp_path):
    import json

    import jsonschema
    from typer.testing import CliRunner

    from attrib_audit.cli import app
    from attrib_audit.report import SCHEMA

    out = tmp_path / "r"
    # the no-argument audit, reduced (fewer samples and steps) to keep the suite fast
    result = CliRunner().invoke(
        app, ["audit", "--samples", "8", "--steps", "2", "--ig-steps", "4", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    jsonschema.validate(report, SCHEMA)
    assert report["model"]["card"]["name"] == "fashion-mnist-natural"
    assert report["data"]["source"] == "fashion-mnist:slice"
    assert report["config"]["epsilons"] == [4 / 255, 8 / 255]  # the quick configuration
    assert sorted(p.name for p in out.iterdir()) == ["junit.xml", "report.html", "report.json"]
    assert result.stdout.rstrip().endswith(
        "attrib-audit audit --preset fashion-mnist --samples 1000"
    )
