"""What every attribution method shares: the quantity explained and the folded gradient."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

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


# Rows per model call when the caller sets no ``max_batch``: chunks of about this many input
# elements. On CPU, folding 50 IG steps of 64 28x28 images into one call is ~2x slower, first
# and second order, than chunks of ~80 rows (benchmarks/chunking.py: 2**14..2**16 elements are
# all near the best, 2**20 loses most of the gain). Accelerators want large batches; their
# budget bounds memory rather than speed (not measured here).
AUTO_CHUNK_ELEMENTS = {"cpu": 2**16, "accelerator": 2**22}


def auto_max_batch(points: Tensor) -> int:
    """Rows per chunk so one chunk holds about :data:`AUTO_CHUNK_ELEMENTS` input elements."""
    budget = AUTO_CHUNK_ELEMENTS["cpu" if points.device.type == "cpu" else "accelerator"]
    per_row = max(1, points[0].numel()) if points.shape[0] else 1
    return max(1, budget // per_row)


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
    ``points`` was computed from (an attack's ``x``), so it can be differentiated again.

    Shape:
        points: (N, ...)
        target: (N,)
        returns: (N, ...)
    """
    n = points.shape[0]
    if max_batch is not None and max_batch < 0:
        raise AttribAuditError(f"max_batch must be >= 0, got {max_batch}")
    if max_batch is None:
        max_batch = auto_max_batch(points)
    step = n if not max_batch or max_batch >= n else max_batch
    out = []
    for start in range(0, n, step):
        chunk = points[start : start + step]
        if not create_graph or not chunk.requires_grad:
            chunk = chunk.detach().requires_grad_(True)
        with torch.enable_grad():
            scores = quantity(model(chunk), target[start : start + step], explain)
            (grad,) = torch.autograd.grad(scores.sum(), chunk, create_graph=create_graph)
        out.append(grad)
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
