"""Loading checkpoints (state_dict, safetensors, TorchScript, ONNX, trusted pickles) with cards."""

from __future__ import annotations

import hashlib
import math
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from attrib_audit.errors import AttribAuditError, UntrustedCodeError
from attrib_audit.models import onnx_graph
from attrib_audit.models.arch import build_arch, check_card_arch, zoo_card
from attrib_audit.models.card import ModelCard
from attrib_audit.registry import LOADERS

FORMATS = ("state_dict", "safetensors", "torchscript", "onnx", "pickle")
# Values per input image (C*H*W) past which a card is refused: 3 x 4096 x 4096 fits; a card
# that asks for more would make the probe alone exhaust memory.
MAX_INPUT_ELEMENTS = 2**26


class Normalized(nn.Module):
    """``inner((x - mean) / std)``: the card's normalisation inside the model, so inputs and
    epsilons live in the card's value range.

    Shape:
        x: (B, C, H, W)
        returns: (B, K)
    """

    def __init__(self, inner: nn.Module, mean=None, std=None) -> None:
        super().__init__()
        self.inner = inner
        if mean is None:
            self.mean = self.std = None
        else:
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
            self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def normalize(self, x: Tensor) -> Tensor:
        if self.mean is None:
            return x
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def forward(self, x: Tensor) -> Tensor:
        return self.inner(self.normalize(x))


class ChannelsLast(nn.Module):
    """A model that takes NHWC input (card ``layout``), called with NCHW images.

    Shape:
        x: (B, C, H, W)
        returns: (B, K)
    """

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Tensor) -> Tensor:
        return self.inner(x.permute(0, 2, 3, 1))


@dataclass(frozen=True)
class LoadedModel:
    """A loaded classifier: eval-mode module (normalisation inside), card, format and hash.

    For ONNX models ``onnx_session`` is the onnxruntime runtime of the original graph
    (:class:`~attrib_audit.models.onnx_graph.Runtime`) and ``conversion_error`` the largest
    logit difference of the converted module on a probe.
    """

    module: Normalized
    card: ModelCard
    format: str
    sha256: str
    path: Path
    onnx_session: Any = None
    conversion_error: float | None = None
    onnx_notes: tuple[str, ...] = ()  # what the conversion changed (a removed Softmax ...)

    @property
    def num_classes(self) -> int:
        return len(self.card.classes) if self.card.classes else 0

    def predict(self, x: Tensor) -> Tensor:
        """Logits of the audited model: onnxruntime for ONNX, the module otherwise.

        Shape:
            x: (B, C, H, W)
            returns: (B, K)
        """
        if self.onnx_session is not None:
            return self.onnx_session(self.module.normalize(x.cpu())).to(x.device)
        with torch.no_grad():
            return self.module(x)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def detect_format(path: Path) -> str:
    """The checkpoint format, from the suffix and, for torch files, the archive's content."""
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return "onnx"
    if suffix == ".safetensors":
        return "safetensors"
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        names = []
    if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
        return "torchscript"
    return "state_dict"


def _unwrap_state_dict(obj: Any, path: Path) -> dict[str, Tensor]:
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise AttribAuditError(f"{path} holds no state_dict (a mapping of names to tensors)")
    prefix = "module."
    if obj and all(k.startswith(prefix) for k in obj):  # saved from DistributedDataParallel
        obj = {k[len(prefix) :]: v for k, v in obj.items()}
    return obj


def _with_weights(state: dict[str, Tensor], card: ModelCard, path: Path) -> nn.Module:
    spec = card.require("arch", "(a state_dict holds weights, not the architecture)")
    try:  # shapes first, on the meta device: a card cannot make us allocate a model
        with torch.device("meta"):  # the weights do not fit
            skeleton = build_arch(spec, card.arch_kwargs, base=path.parent)
    except Exception:  # some factories cannot build on meta; the real build says why
        skeleton = None
    if skeleton is not None:
        _check_fit(skeleton.state_dict(), state, spec, path)
    model = build_arch(spec, card.arch_kwargs, base=path.parent)
    if skeleton is None:
        _check_fit(model.state_dict(), state, spec, path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise AttribAuditError(
            f"the weights in {path} do not fit architecture {spec!r}: {exc}"
        ) from None
    return model


def _check_fit(expected: dict[str, Tensor], state: dict[str, Tensor], spec: str, path: Path):
    """The state_dict has exactly the architecture's keys, each of the same shape."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} {list(state[k].shape)} vs {list(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    parts = []
    if missing:
        parts.append(f"missing {', '.join(missing[:4])}")
    if unexpected:
        parts.append(f"unexpected {', '.join(unexpected[:4])}")
    if wrong:
        parts.append(f"shapes (file vs architecture) {'; '.join(wrong[:4])}")
    if parts:
        raise AttribAuditError(
            f"the weights in {path} do not fit architecture {spec!r} ({'; '.join(parts)}); "
            "check --arch and its arguments"
        )


def _torch_load_error(path: Path, exc: Exception) -> AttribAuditError:
    """What is wrong with a file torch.load refused, in our words (torch's advice to retry
    with weights_only=False would run the file's code)."""
    text = str(exc)
    if path.stat().st_size == 0:
        why = "the file is empty (0 bytes)"
    elif isinstance(exc, RuntimeError) and "zip archive" in text:
        why = "its zip archive is damaged (truncated or corrupt)"
    else:
        detail = next((ln.strip() for ln in text.splitlines() if "Unsupported" in ln), "")
        why = "it is corrupt or was not written by torch.save" + (
            f" ({detail.rstrip('.')})" if detail else ""
        )
    return AttribAuditError(f"cannot read {path} as a torch checkpoint: {why}")


@LOADERS.declare("state_dict")
def load_state_dict_file(path: Path, card: ModelCard, *, trust: bool = False) -> nn.Module:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        blocked = re.search(r"unsupported global\W+(?:GLOBAL )?([\w.]+)", str(exc), re.I)
        if blocked is None:  # not a pickle of objects at all
            raise _torch_load_error(path, exc) from None
        if not trust:
            raise UntrustedCodeError(
                f"{path} is a pickled Python object (it names {blocked.group(1)}), not a plain "
                "state_dict; unpickling runs arbitrary code, so it is refused. If you trust "
                "its source, pass --trust-checkpoint (trust=True)"
            ) from None
        return load_pickle(path, card, trust=True)
    except Exception as exc:
        raise _torch_load_error(path, exc) from None
    return _with_weights(_unwrap_state_dict(obj, path), card, path)


@LOADERS.declare("pickle")
def load_pickle(path: Path, card: ModelCard, *, trust: bool = False) -> nn.Module:
    if not trust:
        raise AttribAuditError(
            f"{path}: loading a pickled module runs arbitrary code; pass --trust-checkpoint "
            "(trust=True) if you trust its source"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise _torch_load_error(path, exc) from None
    if isinstance(obj, nn.Module):
        return obj
    return _with_weights(_unwrap_state_dict(obj, path), card, path)


@LOADERS.declare("safetensors")
def load_safetensors(path: Path, card: ModelCard, *, trust: bool = False) -> nn.Module:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise AttribAuditError(f"cannot read {path} as safetensors: {exc}") from None
    return _with_weights(_unwrap_state_dict(state, path), card, path)


@LOADERS.declare("torchscript")
def load_torchscript(path: Path, card: ModelCard, *, trust: bool = False) -> nn.Module:
    try:
        return torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AttribAuditError(f"cannot load {path} as TorchScript: {first}") from None


@LOADERS.declare("onnx")
def load_onnx(path: Path, card: ModelCard, *, trust: bool = False) -> nn.Module:
    """The graph converted to a torch module. :func:`load_model` goes through
    :func:`_load_onnx` instead, which also keeps the onnxruntime session and the card."""
    module, *_ = _load_onnx(path, card)
    return module


def _load_onnx(path: Path, card: ModelCard):
    model, facts = onnx_graph.load(path)
    graph_card = ModelCard.from_dict(facts.card, origin=f"card embedded in {path}")
    card = graph_card.under(card)
    layout = card.layout or facts.layout or "NCHW"
    if card.input_shape is None and facts.input_shape is not None:
        card = card.with_(input_shape=facts.image_shape(layout))
    if layout == "NHWC":
        card = card.with_(layout=layout)
    model, removed = onnx_graph.strip_output_activation(model)
    notes = []
    if removed:  # onnxruntime then runs the same graph: the original up to the logits
        notes.append(
            f"the graph ends in {removed}; it was removed, so the maps explain the logits "
            "before it (predictions are unchanged)"
        )
        sess = onnx_graph.session(model.SerializeToString(), facts.input_name, facts.batch)
    else:
        sess = onnx_graph.session(path, facts.input_name, facts.batch)
    module = onnx_graph.Logits(onnx_graph.convert(onnx_graph.normalise(model)))
    if layout == "NHWC":
        module = ChannelsLast(module)
        sess.channels_last = True
        notes.append("the graph takes channels-last (NHWC) input; images are transposed for it")
    if facts.batch == 1:
        module = onnx_graph.PerSample(module)
        notes.append("the graph fixes a batch of 1; it runs one sample at a time")
    elif facts.batch is not None:
        raise AttribAuditError(
            f"the ONNX graph fixes its batch at {facts.batch}; re-export it with a dynamic "
            "batch dimension (or a batch of 1)"
        )
    return module, card, sess, tuple(notes)


def _probe(card: ModelCard, n: int = 4, seed: int = 0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    lo, hi = card.value_range or (0.0, 1.0)
    shape = card.require("input_shape", "(needed to build a probe batch)")
    return torch.rand((n, *shape), generator=g) * (hi - lo) + lo


def load_model(
    path: str | Path,
    *,
    arch: str | None = None,
    input_shape: tuple[int, ...] | None = None,
    value_range: tuple[float, float] | None = None,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    classes: tuple[str, ...] | None = None,
    card: str | Path | None = None,
    format: str | None = None,
    trust: bool = False,
) -> LoadedModel:
    """Load a classifier checkpoint with its model card.

    The card comes from ``card`` (a TOML file) or the sidecar next to the checkpoint
    (``model.pt`` -> ``model.toml``), then, for ONNX, the card embedded in the graph and the
    graph's input shape; keyword arguments override all of them. Pickled modules load only
    with ``trust=True``.

    Raises:
        AttribAuditError: a missing file, an unreadable checkpoint, or a fact the card lacks
            (naming the flag that gives it).
    """

    path = Path(path)
    if not path.is_file():
        raise AttribAuditError(f"model file {path} does not exist")
    sidecar = Path(card) if card is not None else path.with_suffix(".toml")
    if card is not None and not sidecar.is_file():
        raise AttribAuditError(f"model card {sidecar} does not exist")
    base = ModelCard.from_toml(sidecar) if sidecar.is_file() else ModelCard()
    if arch is None and base.arch is not None and not trust:  # the card's, not the user's
        check_card_arch(base.arch, f"model card {sidecar}")
    spec = arch or base.arch
    meta = zoo_card(spec) if spec else None
    if meta is not None:  # the zoo's metadata of the named weights, under the sidecar's fields
        base = ModelCard.from_dict(meta, origin=f"the metadata of {spec}").under(base)
    the_card = base.merged(
        arch=arch,
        input_shape=input_shape,
        value_range=value_range,
        mean=mean,
        std=std,
        classes=classes,
    )
    fmt = format or _format_for(path, LOADERS)
    sess = None
    onnx_notes: tuple[str, ...] = ()
    if fmt == "onnx":
        inner, the_card, sess, onnx_notes = _load_onnx(path, the_card)
    else:
        inner = LOADERS.get(fmt).obj(path, the_card, trust=trust)
    if not isinstance(inner, nn.Module):
        raise AttribAuditError(
            f"the {fmt} loader returned {type(inner).__name__} for {path}, not a torch.nn.Module"
        )
    if fmt != "onnx" and the_card.layout == "NHWC":  # (the ONNX loader wraps its own)
        inner = ChannelsLast(inner)
    shape = the_card.require("input_shape")
    the_card.require("value_range", "(epsilons and noise are measured in it)")
    if math.prod(shape) > MAX_INPUT_ELEMENTS:
        raise AttribAuditError(
            f"input_shape {','.join(map(str, shape))} has {math.prod(shape):,} values per image, "
            f"more than the {MAX_INPUT_ELEMENTS:,} this tool handles; check the card"
        )
    module = Normalized(inner, the_card.mean, the_card.std).eval()
    for p in module.parameters():
        p.requires_grad_(False)
    probe = _probe(the_card)
    with torch.no_grad():
        try:
            logits = module(probe)
        except Exception as exc:
            raise AttribAuditError(
                f"the model fails on an input of shape {list(probe.shape)} "
                f"(from the card's input_shape): {type(exc).__name__}: {exc}"
            ) from None
    if not isinstance(logits, Tensor):
        raise AttribAuditError(
            f"the model returns {type(logits).__name__}, not a tensor; attrib-audit needs a "
            "classifier whose forward returns logits (B, K)"
        )
    if logits.dim() != 2 or logits.shape[0] != probe.shape[0]:
        raise AttribAuditError(
            f"the model returns shape {tuple(logits.shape)} for {probe.shape[0]} inputs; "
            "expected logits (B, K)"
        )
    if not bool(torch.isfinite(logits).all()):
        raise AttribAuditError(
            f"the model returns non-finite logits (NaN or inf) on {probe.shape[0]} probe inputs "
            "in its value range; its attributions cannot be measured"
        )
    k = logits.shape[1]
    if the_card.classes is None:
        the_card = the_card.with_(classes=tuple(str(i) for i in range(k)))
    elif len(the_card.classes) != k:
        raise AttribAuditError(
            f"the card names {len(the_card.classes)} classes but the model has {k} outputs; "
            "fix --classes or the card"
        )
    error = None
    if sess is not None:
        error = onnx_graph.verify(inner, sess, module.normalize(probe))
    return LoadedModel(module, the_card, fmt, sha256(path), path, sess, error, onnx_notes)


def _format_for(path: Path, loaders) -> str:
    builtin = detect_format(path)
    suffix = path.suffix.lower()
    for entry in loaders:  # a plugin loader claims its own suffixes
        if suffix in entry.facts.suffixes:
            return entry.name
    return builtin
