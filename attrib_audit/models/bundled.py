"""The sample models shipped with the package (``sample_models/`` in the source tree)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from attrib_audit.errors import AttribAuditError

DIGITS = "digits-cnn"
FASHION = "fashion-mnist-natural"
DEFAULT = FASHION  # what `attrib-audit audit` with no model audits
# bundled model -> (its training data, the data an audit of it uses by default)
DATA = {
    DIGITS: ("digits:train", "digits:test"),
    FASHION: ("fashion-mnist:train", "fashion-mnist:slice"),
}


def sample_models_dir() -> Path:
    """Where the sample models are: the installed ``attrib_audit.sample_models`` package, or the
    ``sample_models/`` folder of a source checkout."""
    spec = importlib.util.find_spec("attrib_audit.sample_models")
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            if Path(loc).is_dir():
                return Path(loc)
    here = Path(__file__).resolve().parents[2] / "sample_models"
    if here.is_dir():
        return here
    raise AttribAuditError("the bundled sample models are missing from this installation")


def bundled_data(path: str | Path) -> tuple[str, str] | None:
    """(training data, audit data) when ``path`` is one of the bundled models, else None."""
    path = Path(path).resolve()
    for name, data in DATA.items():
        if path.parent == (sample_models_dir() / name).resolve():
            return data
    return None


def sample_model(name: str = DEFAULT, fmt: str = "pt") -> Path:
    """Path of a bundled model file, e.g. ``sample_model("digits-cnn", "onnx")``."""
    path = sample_models_dir() / name / f"model.{fmt}"
    if not path.is_file():
        available = sorted(p.name for p in sample_models_dir().iterdir() if p.is_dir())
        raise AttribAuditError(
            f"no bundled model {name!r} in format {fmt!r}; bundled: {', '.join(available)}"
        )
    return path
