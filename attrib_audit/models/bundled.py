"""The sample models shipped with the package (``sample_models/`` in the source tree)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from attrib_audit.errors import AttribAuditError

DIGITS = "digits-cnn"
FASHION = "fashion-mnist-natural"
ROBUST = "fashion-mnist-robust"
DEFAULT = FASHION  # what `attrib-audit audit` with no model audits
# bundled model -> (its training data, the data an audit of it uses by default)
DATA = {
    DIGITS: ("digits:train", "digits:test"),
    FASHION: ("fashion-mnist:train", "fashion-mnist:slice"),
    ROBUST: ("fashion-mnist:train", "fashion-mnist:slice"),
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


def publish_sample_model(trained: Path, card, folder: Path, *, test: str, also: str) -> float:
    """Write a trained state_dict as a sample model in ``folder``: ``model.pt``, ``model.onnx``
    (verified with onnxruntime) and ``model.toml``, the card headed by the accuracies on the
    ``test`` and ``also`` data sources. Returns the ``test`` accuracy. For the scripts in
    ``sample_models/*/train.py``."""
    import shutil

    import torch

    from attrib_audit.data import load_data
    from attrib_audit.models.export import save_model
    from attrib_audit.models.loading import load_model

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(trained, folder / "model.pt")
    card_path = folder / "model.toml"
    card_path.write_text(card.to_toml())
    loaded = load_model(folder / "model.pt")
    kw = {"input_shape": card.input_shape, "value_range": card.value_range}
    data = {source: load_data(source, **kw) for source in (test, also)}

    @torch.no_grad()
    def accuracy_of(model, source: str) -> float:
        return (model.predict(data[source].x).argmax(1) == data[source].y).float().mean().item()

    accuracy = {source: (accuracy_of(loaded, source), len(d)) for source, d in data.items()}
    save_model(loaded.module.inner, card, "onnx", folder / "model.onnx", probe=data[test].x[:4])
    header = "".join(
        f"# {source} accuracy {acc:.4f} ({n:,} images); made by train.py\n"
        for source, (acc, n) in accuracy.items()
    )
    card_path.write_text(header + card.to_toml())  # save_model wrote the bare card
    onnx_acc = accuracy_of(load_model(folder / "model.onnx"), test)
    print(f"{test} accuracy: state_dict {accuracy[test][0]:.4f}, onnx {onnx_acc:.4f}")
    return accuracy[test][0]
