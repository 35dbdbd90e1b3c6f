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
        "attrib_audit/data/imagenet_synsets.txt",
        "attrib_audit/sample_models/fashion-mnist-natural/model.onnx",
        "attrib_audit/py.typed",
    ):
        assert needed in names


def test_the_command_line_starts_without_torch():
    """``attrib-audit --help`` imports neither torch nor onnx nor matplotlib (they take
    seconds); commands import them when they run."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from attrib_audit.cli import app\n"
        "assert CliRunner().invoke(app, ['--help']).exit_code == 0\n"
        "assert CliRunner().invoke(app, ['audit', '--help']).exit_code == 0\n"
        "heavy = sorted({'torch', 'onnx', 'matplotlib', 'numpy'} & set(sys.modules))\n"
        "print(','.join(heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == ""


def test_no_module_is_shadowed_by_a_function():
    """``attrib_audit.x.y`` is always the module y (a package re-exporting a function of the
    same name would hide it from ``import attrib_audit.x.y as m`` and monkeypatch)."""
    import importlib
    import pkgutil
    import types

    import attrib_audit

    def walk(pkg):
        for info in pkgutil.iter_modules(pkg.__path__):
            if info.name == "__main__":
                continue
            module = importlib.import_module(f"{pkg.__name__}.{info.name}")
            assert isinstance(getattr(pkg, info.name), types.ModuleType), module.__name__
            if info.ispkg:
                walk(module)

    walk(attrib_audit)
    assert callable(attrib_audit.audit) and attrib_audit.pipeline.audit is attrib_audit.audit
