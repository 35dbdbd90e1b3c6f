"""Writing a (fine-tuned) model back in its input's format, with its card."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import torch
from torch import nn

from attrib_audit.errors import AttribAuditError
from attrib_audit.io import atomic_write_bytes, atomic_write_text
from attrib_audit.models import onnx_graph
from attrib_audit.models.card import ModelCard

SUFFIX = {
    "state_dict": ".pt",
    "safetensors": ".safetensors",
    "torchscript": ".pt",
    "onnx": ".onnx",
    "pickle": ".pt",
}


def _onnx_bytes(module: nn.Module, example: torch.Tensor) -> bytes:
    """The module as an ONNX graph with a dynamic batch dimension. The TorchScript-based
    exporter takes onnx2torch's converted graphs, which torch.export does not."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                module,
                (example,),
                buf,
                input_names=["x"],
                output_names=["logits"],
                dynamic_axes={"x": {0: "batch"}},
                dynamo=False,
                opset_version=17,
            )
        except Exception as exc:
            raise AttribAuditError(f"cannot export the model to ONNX: {exc}") from None
    return buf.getvalue()


def save_model(
    inner: nn.Module, card: ModelCard, fmt: str, path: str | Path, *, probe: torch.Tensor
) -> Path:
    """Write ``inner`` (the model without the card's normalisation) in format ``fmt`` to
    ``path`` with its card beside it (``model.pt`` -> ``model.toml``); ONNX output is verified
    against the module with onnxruntime on ``probe`` (already normalised). Atomic."""
    path = Path(path)
    inner = inner.eval()
    if fmt in ("state_dict", "pickle"):
        buf = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in inner.state_dict().items()}, buf)
        atomic_write_bytes(path, buf.getvalue())
    elif fmt == "safetensors":
        from safetensors.torch import save

        state = {k: v.detach().cpu().contiguous() for k, v in inner.state_dict().items()}
        atomic_write_bytes(path, save(state))
    elif fmt == "torchscript":
        buf = io.BytesIO()
        scripted = (
            inner if isinstance(inner, torch.jit.ScriptModule) else torch.jit.trace(inner, probe)
        )
        torch.jit.save(scripted, buf)
        atomic_write_bytes(path, buf.getvalue())
    elif fmt == "onnx":
        import onnx

        graph = onnx.load_from_string(_onnx_bytes(inner.cpu(), probe.cpu()))
        meta = {k: v for k, v in card.to_dict().items() if k not in ("arch", "arch_kwargs")}
        graph.metadata_props.add(key=onnx_graph.CARD_METADATA_KEY, value=json.dumps(meta))
        data = graph.SerializeToString()
        sess = onnx_graph.session(data)
        onnx_graph.verify(inner.cpu(), sess, probe.cpu())
        atomic_write_bytes(path, data)
    else:
        raise AttribAuditError(f"cannot write models in format {fmt!r}")
    atomic_write_text(path.with_suffix(".toml"), card.to_toml())
    return path
