"""The bundled Fashion-MNIST slice and the natural and robust Fashion-MNIST sample models."""

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


MODELS = ["fashion-mnist-natural", "fashion-mnist-robust"]


@pytest.mark.parametrize("fmt", ["pt", "onnx"])
@pytest.mark.parametrize("name", MODELS)
def test_the_sample_models_load_and_reach_their_stated_accuracy(name, fmt):
    path = sample_model(name, fmt)
    model = load_model(path)
    assert model.card.classes == FASHION_MNIST_CLASSES
    data = load_data("fashion-mnist:slice", **CARD)
    acc = (model.predict(data.x).argmax(1) == data.y).float().mean().item()
    stated = _stated(path, "slice")
    # the same weights on the same 1,000 images: at most 2 images may flip across platforms
    assert abs(acc - stated) <= 0.002
    assert _stated(path, "test") >= (0.90 if name.endswith("natural") else 0.80)


def test_the_sample_model_files_stay_small():
    for name in MODELS:
        for fmt in ("pt", "onnx"):
            assert sample_model(name, fmt).stat().st_size < 5 * 2**20
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
        app,
        [
            "audit",
            "--samples",
            "8",
            "--steps",
            "2",
            "--method-param",
            "ig.steps=4",
            "--out",
            str(out),
        ],
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


def _ifia_topk(name, tmp_path, samples, steps, ig_steps):
    """Median top-k intersection of IG under IFIA top-k at the fashion-mnist preset's epsilon."""
    import json

    from typer.testing import CliRunner

    from attrib_audit.cli import app

    out = tmp_path / name
    args = ["audit", str(sample_model(name)), "--preset", "fashion-mnist", "--out", str(out)]
    args += ["--samples", str(samples), "--steps", str(steps)]
    args += ["--method-param", f"ig.steps={ig_steps}"]
    result = CliRunner().invoke(app, args + ["--format", "json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads((out / "report.json").read_text())["results"]
    assert row["attack"] == "ifia-topk" and row["epsilon"] == 0.1 and row["n"] >= 30
    return row["metrics"]["topk_intersection"]["median"]


@pytest.mark.slow
def test_the_robust_model_beats_the_natural_one_on_ifia_topk(tmp_path):
    # the preset's attack (eps 0.1, k 100, steps of 0.01) shortened to 40 steps, IG-16, on the
    # first 48 slice images; full-protocol numbers are in docs/REPRODUCTION.md
    natural = _ifia_topk("fashion-mnist-natural", tmp_path, 48, 40, 16)
    robust = _ifia_topk("fashion-mnist-robust", tmp_path, 48, 40, 16)
    print(f"median top-k: natural {natural:.3f}, robust {robust:.3f}")
    assert robust > natural + 0.03, (natural, robust)
