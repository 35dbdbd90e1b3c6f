"""The wheel carries what an installed attrib-audit needs: the bundled models and templates."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_wheel_ships_the_sample_models_and_templates(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("attrib_audit-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "attrib_audit/sample_models/digits-cnn/model.pt",
        "attrib_audit/sample_models/digits-cnn/model.onnx",
        "attrib_audit/sample_models/digits-cnn/model.toml",
        "attrib_audit/report/templates/report.html.j2",
        "attrib_audit/data/fashion_mnist_slice.npz",
        "attrib_audit/sample_models/fashion-mnist-natural/model.onnx",
        "attrib_audit/py.typed",
    ):
        assert needed in names
