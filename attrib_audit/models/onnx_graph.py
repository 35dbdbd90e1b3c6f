"""ONNX graphs: check, normalise for onnx2torch, convert, and verify against onnxruntime."""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import version_converter
from torch import nn

from attrib_audit.errors import AttribAuditError

# onnx2torch 1.5 implements the default-domain operators up to this opset (Reshape-19 and the
# opset-18 reductions it lacks convert back cleanly).
TARGET_OPSET = 17
# The converted module must agree with onnxruntime on a probe batch: |a - b| <= ATOL + RTOL |b|.
ATOL, RTOL = 1e-4, 1e-3
CARD_METADATA_KEY = "attrib_audit.card"


# opsets below this one are converted up first: onnx2torch lacks the old forms of some ops
# (Gemm-7, for instance), which graphs from older exporters carry
OLDEST_OPSET = 11
OUTPUT_ACTIVATIONS = ("Softmax", "LogSoftmax")


@dataclass(frozen=True)
class OnnxFacts:
    """What the graph says about its input, and the card it carries (if we wrote it).
    ``batch``: the input's batch size when the graph fixes it (often 1), else None."""

    input_name: str
    input_shape: tuple[int, ...] | None  # the input's dims after the batch, when static
    card: dict[str, Any]
    batch: int | None = None
    layout: str | None = None  # "NHWC" when the graph first transposes its input to NCHW

    def image_shape(self, layout: str | None) -> tuple[int, ...] | None:
        """The input shape as (C, H, W) for a graph of this layout."""
        shape = self.input_shape
        if layout == "NHWC" and shape is not None and len(shape) == 3:
            return (shape[2], shape[0], shape[1])
        return shape


def read_facts(model: onnx.ModelProto) -> OnnxFacts:
    init = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in init]
    if len(inputs) != 1:
        raise AttribAuditError(
            f"the ONNX graph has {len(inputs)} inputs; attrib-audit audits image classifiers "
            "with exactly one input"
        )
    dims = inputs[0].type.tensor_type.shape.dim
    shape = None
    if len(dims) >= 2 and all(d.HasField("dim_value") and d.dim_value > 0 for d in dims[1:]):
        shape = tuple(int(d.dim_value) for d in dims[1:])
    batch = int(dims[0].dim_value) if dims and dims[0].HasField("dim_value") else None
    card: dict[str, Any] = {}
    for prop in model.metadata_props:
        if prop.key == CARD_METADATA_KEY:
            try:
                card = json.loads(prop.value)
            except (json.JSONDecodeError, RecursionError):
                raise AttribAuditError(
                    f"the card embedded in the ONNX graph ({CARD_METADATA_KEY}) is not JSON"
                ) from None
    first = [n for n in model.graph.node if inputs[0].name in n.input]
    nhwc = (
        len(dims) == 4
        and len(first) == 1
        and first[0].op_type == "Transpose"
        and [list(a.ints) for a in first[0].attribute if a.name == "perm"] == [[0, 3, 1, 2]]
    )
    return OnnxFacts(
        inputs[0].name,
        shape,
        card,
        batch if batch and batch > 0 else None,
        "NHWC" if nhwc else None,
    )


def normalise(model: onnx.ModelProto) -> onnx.ModelProto:
    """Rewrite what onnx2torch cannot take into equivalent graphs it can.

    - onnxslim simplifies the graph: what is constant is folded into initialisers (weights
      held as ``Constant`` nodes, as tf2onnx and paddle2onnx write them, or computed by
      ``ConstantOfShape``, as Caffe2's exporter did; Identity nodes over initialisers, which
      exporters that de-duplicate equal initialisers emit), initialisers also listed as graph
      inputs (IR version < 4) are dropped from the inputs, and batch norms are fused.
    - Opsets above ``TARGET_OPSET``, or below ``OLDEST_OPSET``: converted with onnx's version
      converter.
    - ``Reshape(allowzero=1)`` whose shape is a constant without zeros: identical to
      ``allowzero=0``, which onnx2torch implements.

    The result is checked against onnxruntime on the original graph (:func:`verify`).
    """
    model = _slimmed(onnx.ModelProto.FromString(model.SerializeToString()))
    inits = {i.name for i in model.graph.initializer}
    real_inputs = [i for i in model.graph.input if i.name not in inits]
    if len(real_inputs) != len(model.graph.input):  # where onnxslim left them
        del model.graph.input[:]
        model.graph.input.extend(real_inputs)
    model.ir_version = max(model.ir_version, 4)  # IR 3 would want every initialiser an input
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is not None and not OLDEST_OPSET <= opset <= TARGET_OPSET:
        try:
            model = version_converter.convert_version(model, TARGET_OPSET)
        except Exception as exc:
            raise AttribAuditError(
                f"cannot convert the ONNX graph from opset {opset} to {TARGET_OPSET} for "
                f"onnx2torch: {_first_line(exc)}; re-export the model with "
                f"opset_version={TARGET_OPSET}"
            ) from None
    constants = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type != "Reshape":
            continue
        for attr in node.attribute:
            shape = constants.get(node.input[1]) if len(node.input) > 1 else None
            if attr.name == "allowzero" and attr.i == 1 and shape is not None and 0 not in shape:
                attr.i = 0
    return model


def _slimmed(model: onnx.ModelProto) -> onnx.ModelProto:
    """``onnxslim.slim(model)``, quietly; the model itself where onnxslim fails on it (the
    converter then says what it cannot take)."""
    import onnxslim

    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return onnxslim.slim(model)
    except Exception:
        return model


def strip_output_activation(model: onnx.ModelProto) -> tuple[onnx.ModelProto, str | None]:
    """A graph ending in ``Softmax``/``LogSoftmax`` over the classes, without it (its input,
    the logits, becomes the output), and the op removed; the graph itself when it has none.
    The maps then explain the logits, as for any other classifier; predictions are the same."""
    graph = model.graph
    if len(graph.output) != 1:
        return model, None
    out = graph.output[0].name
    last = [n for n in graph.node if out in n.output]
    if len(last) != 1 or last[0].op_type not in OUTPUT_ACTIVATIONS:
        return model, None
    node = last[0]
    axis = next((a.i for a in node.attribute if a.name == "axis"), None)
    if axis not in (None, 1, -1):
        return model, None
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    node = next(n for n in graph.node if out in n.output)
    logits = node.input[0]
    graph.node.remove(node)
    info = onnx.ValueInfoProto()
    info.CopyFrom(graph.output[0])
    info.name = logits
    del graph.output[:]
    graph.output.append(info)
    return model, node.op_type


class PerSample(nn.Module):
    """A converted graph with a fixed batch of one, run one sample at a time (gradients flow
    through each call; the batch is put back together)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.inner(x[i : i + 1]) for i in range(x.shape[0])])


def convert(model: onnx.ModelProto) -> nn.Module:
    from onnx2torch import convert as onnx2torch_convert

    try:
        return onnx2torch_convert(model)
    except Exception as exc:
        where = _failing_node(model, exc)
        raise AttribAuditError(
            f"onnx2torch cannot convert this graph{where} ({type(exc).__name__}: "
            f"{_first_line(exc)}); export the model in PyTorch form (state_dict + --arch) "
            "instead"
        ) from None


def _failing_node(model: onnx.ModelProto, exc: Exception) -> str:
    """ " at node NAME (OP)" for the node the converter was converting when it failed: the
    ``onnx_node`` its loop held (read off the traceback), else the node its message names."""
    tb = exc.__traceback__
    while tb is not None:
        node = tb.tb_frame.f_locals.get("onnx_node")
        if node is not None and hasattr(node, "operation_type"):
            return f" at node {getattr(node, 'name', '') or '(unnamed)'} ({node.operation_type})"
        tb = tb.tb_next
    text = str(exc)
    for node in model.graph.node:
        if f"operation_type='{node.op_type}'" in text or (node.name and f"'{node.name}'" in text):
            return f" at node {node.name or '(unnamed)'} ({node.op_type})"
    return ""


def as_logits(out: torch.Tensor) -> torch.Tensor:
    """(B, K, 1, 1) scores (a fully convolutional head) as (B, K); anything else unchanged."""
    if out.dim() > 2 and all(d == 1 for d in out.shape[2:]):
        return out.flatten(1)
    return out


class Logits(nn.Module):
    """A classifier whose head is fully convolutional, (B, K, 1, 1), giving (B, K)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return as_logits(self.inner(x))


class Runtime:
    """An onnxruntime session of the graph, run on batches of any size (one sample at a time
    where the graph fixes a batch of one)."""

    def __init__(self, sess, input_name: str, batch: int | None = None) -> None:
        self.sess, self.input_name, self.batch = sess, input_name, batch
        self.channels_last = False  # given (B, C, H, W), the graph takes (B, H, W, C)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        a = x.detach().cpu().float().numpy()
        if self.channels_last:
            a = np.ascontiguousarray(a.transpose(0, 2, 3, 1))
        if self.batch == 1:
            outs = [self.sess.run(None, {self.input_name: a[i : i + 1]})[0] for i in range(len(a))]
            out = torch.from_numpy(np.concatenate([np.asarray(o) for o in outs]))
        else:
            out = torch.from_numpy(np.asarray(self.sess.run(None, {self.input_name: a})[0]))
        return as_logits(out)


def session(path_or_bytes: str | Path | bytes, input_name: str = "", batch: int | None = None):
    import onnxruntime as ort

    providers = ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    source = path_or_bytes if isinstance(path_or_bytes, bytes) else str(path_or_bytes)
    try:
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: its warnings (unused initialisers) are noise
        sess = ort.InferenceSession(source, sess_options=options, providers=providers)
    except Exception as exc:
        raise AttribAuditError(f"onnxruntime cannot run this graph: {_first_line(exc)}") from None
    return Runtime(sess, input_name or sess.get_inputs()[0].name, batch)


def verify(module: nn.Module, runtime: Runtime, probe: torch.Tensor) -> float:
    """Largest |converted - onnxruntime| on ``probe``; an error past ATOL + RTOL |ref|."""
    with torch.no_grad():
        got = module(probe.float()).float()
    ref = runtime(probe)
    if got.shape != ref.shape:
        raise AttribAuditError(
            f"the converted ONNX module returns shape {tuple(got.shape)} but onnxruntime "
            f"returns {tuple(ref.shape)}"
        )
    diff = (got - ref).abs()
    if not bool((diff <= ATOL + RTOL * ref.abs()).all()):
        raise AttribAuditError(
            f"the converted ONNX module disagrees with onnxruntime by up to "
            f"{float(diff.max()):.3g} (tolerance {ATOL} + {RTOL}*|logit|); the conversion "
            "is not faithful, export the model in PyTorch form instead"
        )
    return float(diff.max())


def check_external_data(model: onnx.ModelProto, folder: Path) -> None:
    """Every external-data location is a file inside the model's folder: a graph cannot make
    us read other files (``../../etc/shadow``, an absolute path, a symlink out)."""
    from onnx.external_data_helper import ExternalDataInfo, _get_all_tensors, uses_external_data

    root = folder.resolve()
    for tensor in _get_all_tensors(model):
        if not uses_external_data(tensor):
            continue
        location = ExternalDataInfo(tensor).location
        target = (root / location).resolve()
        if Path(location).is_absolute() or not target.is_relative_to(root):
            raise AttribAuditError(
                f"the ONNX graph's tensor {tensor.name!r} names external data {location!r} "
                f"outside the model's folder {folder}; refused"
            )
        if not target.is_file():
            raise AttribAuditError(
                f"the ONNX graph's tensor {tensor.name!r} needs external data {location!r}, "
                f"which is not in {folder}; copy it next to the model"
            )


def load(path: Path) -> tuple[onnx.ModelProto, OnnxFacts]:
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise AttribAuditError(f"{path} is not a valid ONNX model: {_first_line(exc)}") from None
    check_external_data(model, path.parent)
    try:
        from onnx.external_data_helper import load_external_data_for_model

        load_external_data_for_model(model, str(path.parent))
        onnx.checker.check_model(model)
    except Exception as exc:
        raise AttribAuditError(f"{path} is not a valid ONNX model: {_first_line(exc)}") from None
    return model, read_facts(model)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
