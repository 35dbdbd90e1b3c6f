"""What every attribution method shares: the quantity explained and the folded gradient."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from attrib_audit.errors import AttribAuditError

Explain = Literal["logit", "probability", "loss"]
EXPLAIN_CHOICES: tuple[str, ...] = ("logit", "probability", "loss")


def quantity(logits: Tensor, target: Tensor, explain: str = "logit") -> Tensor:
    """The per-sample scalar an attribution explains.

    Shape:
        logits: (B, K)
        target: (B,)
        returns: (B,)
    """
    if logits.dim() != 2:
        raise ValueError(f"model must return logits of shape (B, K), got {tuple(logits.shape)}")
    if explain == "logit":
        return logits.gather(1, target[:, None]).squeeze(1)
    if explain == "probability":
        return logits.softmax(1).gather(1, target[:, None]).squeeze(1)
    if explain == "loss":
        return F.cross_entropy(logits, target, reduction="none")
    raise AttribAuditError(f"explain must be one of {', '.join(EXPLAIN_CHOICES)}, got {explain!r}")


def check_inputs(x: Tensor, target: Tensor) -> None:
    if x.dim() < 2:
        raise ValueError(f"x must have shape (B, ...), got {tuple(x.shape)}")
    if target.shape != (x.shape[0],):
        raise ValueError(
            f"target must have shape (B,) = ({x.shape[0]},), got {tuple(target.shape)}"
        )


# Rows per model call when the caller sets no ``max_batch``. Speed first: chunks of about this
# many input elements. On CPU, folding 50 IG steps of 64 28x28 images into one call is ~2x slower,
# first and second order, than chunks of ~80 rows (benchmarks/chunking.py: 2**14..2**16 elements
# are all near the best, 2**20 loses most of the gain). Large images still go MIN_ROWS at a time
# (a 224x224 ResNet runs ~25% faster 8 rows a call than one), as memory allows.
AUTO_CHUNK_ELEMENTS = {"cpu": 2**16, "accelerator": 2**22}
MIN_ROWS = 8
# Memory second: the bytes one call's autograd graph may hold (the activations its forward saves
# for backward; with the backward's own graph a second-order one holds 1.7x (Fashion-MNIST CNN),
# 2x (ResNet-18/50) and 3.1x (EfficientNet-B0) as much, measured at 224). On a GPU, a quarter of
# its memory.
GRAPH_BYTES = {"cpu": 2 * 2**30, "accelerator": 0.25}
SECOND_ORDER_FACTOR = 3
_saved_bytes: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def saved_bytes_per_row(model: nn.Module, row: Tensor) -> int:
    """Bytes of the activations one row's forward saves for backward: each storage once, the
    model's own parameters and buffers (shared by every row) not at all. Measured once per
    model, shape, dtype and device: a forward of one row in eval mode, so batch statistics are
    not touched, under a saved-tensors hook."""
    key = (tuple(row.shape), row.dtype, row.device)
    known = _saved_bytes.setdefault(model, {})
    if key not in known:
        own: set[int] = set()
        if isinstance(model, nn.Module):
            tensors = [*model.parameters(), *model.buffers()]
            own = {t.untyped_storage().data_ptr() for t in tensors}
        saved: dict[int, int] = {}

        def pack(t: Tensor) -> Tensor:
            storage = t.untyped_storage()
            if storage.data_ptr() not in own:
                saved[storage.data_ptr()] = storage.nbytes()
            return t

        modes = [(m, m.training) for m in model.modules()] if isinstance(model, nn.Module) else []
        try:
            for m, _ in modes:
                m.training = False
            with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                model(row[None].detach().requires_grad_(True))
        finally:
            for m, mode in modes:
                m.training = mode
        known[key] = max(sum(saved.values()), 1)
    return known[key]


def graph_budget(device: torch.device) -> int:
    """:data:`GRAPH_BYTES` for ``device``, in bytes."""
    if device.type == "cpu":
        return int(GRAPH_BYTES["cpu"])
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        return int(GRAPH_BYTES["accelerator"] * total)
    return int(GRAPH_BYTES["cpu"])


def auto_max_batch(model: nn.Module, points: Tensor, *, create_graph: bool = False) -> int:
    """Rows per chunk: about :data:`AUTO_CHUNK_ELEMENTS` input elements, at least
    :data:`MIN_ROWS`, and no more than :func:`graph_budget` allows for one call's graph."""
    if not points.shape[0]:
        return 1
    budget = AUTO_CHUNK_ELEMENTS["cpu" if points.device.type == "cpu" else "accelerator"]
    rows = max(MIN_ROWS, budget // max(1, points[0].numel()))
    per_row = saved_bytes_per_row(model, points[0]) * (SECOND_ORDER_FACTOR if create_graph else 1)
    return max(1, min(rows, graph_budget(points.device) // per_row))


def chunk_rows(
    model: nn.Module, points: Tensor, max_batch: int | None, *, create_graph: bool = False
) -> int:
    """Rows per model call for ``points``: ``max_batch`` (``None``: :func:`auto_max_batch`;
    ``0``: all rows in one call), never more than there are rows."""
    n = points.shape[0]
    if max_batch is not None and max_batch < 0:
        raise AttribAuditError(f"max_batch must be >= 0, got {max_batch}")
    if max_batch is None:
        max_batch = auto_max_batch(model, points, create_graph=create_graph)
    return n if not max_batch or max_batch >= n else max_batch


def differentiable(chunk: Tensor, create_graph: bool) -> Tensor:
    """``chunk`` as the leaf a gradient is taken at, unless a second-order caller needs the
    graph back to its own input (``create_graph`` and ``chunk`` already requires grad)."""
    if not create_graph or not chunk.requires_grad:
        return chunk.detach().requires_grad_(True)
    return chunk


class _RecomputedGradient(torch.autograd.Function):
    """One chunk's gradient, differentiable once more without keeping its graph: the forward
    computes the gradient and frees the graph; the backward recomputes it with ``create_graph``
    and returns the vector-Jacobian product. Memory is bounded by one chunk instead of growing
    with every chunk of the batch, for one more forward and backward per chunk."""

    @staticmethod
    def forward(ctx, points: Tensor, model: nn.Module, target: Tensor, explain: str) -> Tensor:
        ctx.model, ctx.explain = model, explain
        ctx.save_for_backward(points, target)
        return _gradient(model, points.detach(), target, explain, create_graph=False)[0]

    @staticmethod
    @once_differentiable
    def backward(ctx, v: Tensor):
        points, target = ctx.saved_tensors
        with torch.enable_grad():
            p = points.detach().requires_grad_(True)
            g, _ = _gradient(ctx.model, p, target, ctx.explain, create_graph=True)
            (vjp,) = torch.autograd.grad(g, p, grad_outputs=v)
        return vjp, None, None, None


class LogitTap:
    """The logits a method's own forward computed at exactly ``x`` (see :func:`logits_at`)."""

    def __init__(self, x: Tensor) -> None:
        self.x, self.logits = x, None


_tap: ContextVar[LogitTap | None] = ContextVar("attrib_audit_logit_tap", default=None)


@contextmanager
def logits_at(x: Tensor) -> Iterator[LogitTap]:
    """Record the logits of the model calls a method makes at ``x`` itself (the tensor, not a
    copy or a point computed from it), so a caller that needs the prediction at ``x`` too
    (an attack's keep-best check) does not run the forward again. Saliency evaluates at ``x``;
    methods that evaluate elsewhere (IG's path, SmoothGrad's noise) leave ``tap.logits`` None.

    Shape:
        x: (B, ...)
        tap.logits: (B, K), detached, or None
    """
    tap = LogitTap(x)
    token = _tap.set(tap)
    try:
        yield tap
    finally:
        _tap.reset(token)


def _gradient(model, chunk: Tensor, target: Tensor, explain: str, *, create_graph: bool):
    """(gradient of the explained quantity at the rows of ``chunk``, their logits)."""
    chunk = differentiable(chunk, create_graph)
    with torch.enable_grad():
        logits = model(chunk)
        scores = quantity(logits, target, explain)
        (grad,) = torch.autograd.grad(scores.sum(), chunk, create_graph=create_graph)
    return grad, logits


def gradients(
    model: nn.Module,
    points: Tensor,
    target: Tensor,
    *,
    explain: str = "logit",
    create_graph: bool = False,
    max_batch: int | None = None,
) -> Tensor:
    """Gradient of the explained quantity at each row of ``points``, in chunks of ``max_batch``
    rows (``None``: :func:`auto_max_batch`; ``0``: all rows in one call).

    With ``create_graph=True`` the result stays differentiable with respect to whatever
    ``points`` was computed from (an attack's ``x``), so it can be differentiated again. When
    the graphs of all chunks would not fit :func:`graph_budget` and the model's parameters are
    frozen (an attack, not training), each chunk is recomputed in the backward instead
    (:class:`_RecomputedGradient`), so memory stays that of one chunk.

    Shape:
        points: (N, ...)
        target: (N,)
        returns: (N, ...)
    """
    n = points.shape[0]
    step = chunk_rows(model, points, max_batch, create_graph=create_graph)
    recompute = (
        create_graph
        and points.requires_grad
        and step < n
        and isinstance(model, nn.Module)  # a plain function's parameters cannot be told
        and not any(p.requires_grad for p in model.parameters())
        and n * saved_bytes_per_row(model, points[0]) * SECOND_ORDER_FACTOR
        > graph_budget(points.device)
    )
    tap = _tap.get()
    tap = tap if tap is not None and tap.x is points and not recompute else None
    out, logits = [], []
    for start in range(0, n, step):
        chunk, t = points[start : start + step], target[start : start + step]
        if recompute:
            out.append(_RecomputedGradient.apply(chunk, model, t, explain))
        else:
            grad, chunk_logits = _gradient(model, chunk, t, explain, create_graph=create_graph)
            out.append(grad)
            if tap is not None:
                logits.append(chunk_logits.detach())
    if tap is not None:
        tap.logits = logits[0] if len(logits) == 1 else torch.cat(logits)
    return out[0] if len(out) == 1 else torch.cat(out)


def make_generator(x: Tensor, seed: int | None, generator: torch.Generator | None):
    """The generator noise is drawn from: the caller's, a fresh seeded one, or the global RNG."""
    if generator is not None:
        return generator
    if seed is None:
        return None
    g = torch.Generator(device=x.device)
    g.manual_seed(seed)
    return g


def folded_gradients(
    model: nn.Module,
    points: Tensor,
    target: Tensor,
    *,
    explain: str = "logit",
    create_graph: bool = False,
    max_batch: int | None = None,
) -> Tensor:
    """:func:`gradients` at n points per sample, the n folded into the batch dimension (IG's
    path, the noise tunnel's draws).

    Shape:
        points: (n, B, ...)
        target: (B,)
        returns: (n, B, ...)
    """
    n, b = points.shape[:2]
    grads = gradients(
        model,
        points.reshape(n * b, *points.shape[2:]),
        target.repeat(n),
        explain=explain,
        create_graph=create_graph,
        max_batch=max_batch,
    )
    return grads.reshape(points.shape)
