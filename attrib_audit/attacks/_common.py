"""What every attack shares: state preservation, projection, goals on reduced maps."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from attrib_audit.attributions._common import logits_at
from attrib_audit.errors import AttribAuditError, SettingError
from attrib_audit.metrics.location import center_of_mass
from attrib_audit.metrics.reduce import reduce_map
from attrib_audit.metrics.topk import topk_mask


@contextmanager
def preserved(*modules: nn.Module) -> Iterator[None]:
    """Put modules in eval mode with frozen parameters; restore mode and ``requires_grad``
    flags on the way out, whatever happens."""
    saved = [(m, m.training, [(p, p.requires_grad) for p in m.parameters()]) for m in modules]
    try:
        for m in modules:
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)
        yield
    finally:
        for m, training, flags in saved:
            m.train(training)
            for p, flag in flags:
                p.requires_grad_(flag)


def project(x_adv: Tensor, x: Tensor, epsilon: float, value_range) -> Tensor:
    """Into the L-inf ball of radius epsilon around x, and into the value range."""
    lo, hi = value_range
    return torch.minimum(torch.maximum(x_adv, x - epsilon), x + epsilon).clamp(lo, hi)


def uniform_in_ball(x: Tensor, epsilon: float, value_range, generator) -> Tensor:
    u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return project(x + (2 * u - 1) * epsilon, x, epsilon, value_range)


@dataclass(frozen=True)
class Draws:
    """Several perturbed inputs per sample (a sampling attack's result), made one at a time so
    that they are never all in memory: ``iter(draws)`` yields ``count`` tensors (B, C, H, W).

    The audit measures every draw and aggregates each metric over the draws that keep the
    prediction, as the metric declares (``over_draws``: the mean, or the max for the
    sensitivity metrics)."""

    count: int
    make: Callable[[], Iterator[Tensor]]

    def __iter__(self) -> Iterator[Tensor]:
        return self.make()


def make_generator(x: Tensor, seed: int | None) -> torch.Generator | None:
    if seed is None:
        return None
    g = torch.Generator(device=x.device)
    g.manual_seed(seed)
    return g


def predict(model: nn.Module, x: Tensor) -> Tensor:
    with torch.no_grad():
        return model(x).argmax(1)


def map_and_prediction(
    method, model: nn.Module, x: Tensor, target: Tensor, reduce: str
) -> tuple[Tensor, Tensor]:
    """The audited model's reduced map at ``x`` (detached) and its prediction there: keep-best
    needs both at every step. The prediction reuses the logits of the map's own forward where
    the method evaluates the model at ``x`` itself (saliency); otherwise one more forward.

    Shape:
        x: (B, C, H, W)
        returns: (B, H, W), (B,)
    """
    with logits_at(x) as tap:
        m = reduced(method, model, x, target, reduce).detach()
    pred = tap.logits.argmax(1) if tap.logits is not None else predict(model, x)
    return m, pred


def normalized(m: Tensor) -> Tensor:
    """A reduced map (B, H, W) scaled to unit mass per sample (absolute values)."""
    m = m.abs()
    return m / m.sum((1, 2), keepdim=True).clamp_min(1e-30)


def reduced(
    method, model: nn.Module, x: Tensor, target: Tensor, reduce: str, create_graph: bool = False
) -> Tensor:
    return reduce_map(method(model, x, target, create_graph=create_graph), reduce)


def check_args(x: Tensor, epsilon: float, steps: int, step_size: float) -> None:
    if x.dim() != 4:
        raise ValueError(f"x must have shape (B, C, H, W), got {tuple(x.shape)}")
    if epsilon < 0:
        raise SettingError("epsilon", f"must be >= 0, got {epsilon}")
    if steps < 0:
        raise SettingError("steps", f"must be >= 0, got {steps}")
    if step_size < 0:
        raise SettingError("step_size", f"must be >= 0, got {step_size}")


def signed_steps(
    loss: Callable[[Tensor], Tensor],
    x: Tensor,
    *,
    epsilon: float,
    steps: int,
    step_size: float,
    value_range,
    restarts: int = 0,
    random_start: bool = False,
    generator: torch.Generator | None = None,
    score: Callable[[Tensor], Tensor] | None = None,
    best_score: Tensor | None = None,
    keep: Literal["step", "restart"] = "step",
    before_step: Callable[[int], None] | None = None,
    start: Tensor | None = None,
) -> Tensor:
    """Maximise ``loss(x')`` (per sample, (B,)) by signed steps of ``step_size``, each
    projected to the epsilon ball around x and the value range: the loop of every attack and
    of every robust objective's inner maximisation.

    Restart 0 starts at x (at a uniform point of the ball with ``random_start``, at ``start``
    when given), later ones at a uniform point. Without ``score`` the last iterate is
    returned. With it, per sample, the iterate of highest ``score`` (``-inf`` where it is not
    admissible, a changed prediction say) that beats ``best_score`` is kept, checked after
    every step (``keep="step"``) or at the end of each restart (``"restart"``). The first
    point to beat is ``start`` with its score as ``best_score`` when both are given, else x
    (its score computed when not given), which is returned when no iterate beats it.
    ``before_step(t)`` runs before step t of each restart (an annealing).

    Shape:
        x: (B, C, H, W)
        returns: (B, C, H, W), detached
    """
    x = x.detach()
    start = None if start is None else start.detach()
    best = start.clone() if start is not None and best_score is not None else x.clone()
    if epsilon == 0 or (steps == 0 and score is not None and keep == "step"):
        return best
    if score is not None and best_score is None:
        best_score = score(x)

    def take(x_adv: Tensor) -> None:
        nonlocal best, best_score
        s = score(x_adv)
        better = s > best_score
        best = torch.where(better[:, None, None, None], x_adv, best)
        best_score = torch.where(better, s, best_score)

    x_adv = x
    for r in range(restarts + 1):
        if r == 0 and start is not None:
            x_adv = start.clone()
        elif r > 0 or random_start:
            x_adv = uniform_in_ball(x, epsilon, value_range, generator)
        else:
            x_adv = x.clone()
        for t in range(steps):
            if before_step is not None:
                before_step(t)
            x_adv.requires_grad_(True)
            with torch.enable_grad():
                (grad,) = torch.autograd.grad(loss(x_adv).sum(), x_adv)
            x_adv = project(x_adv.detach() + step_size * grad.sign(), x, epsilon, value_range)
            if score is not None and keep == "step":
                take(x_adv)
        if score is not None and keep == "restart":
            take(x_adv)
    return best if score is not None else x_adv.detach()


class Goal:
    """A dissimilarity D(map) to maximise, fixed by the clean map (Ghorbani et al.).

    ``topk``: minus the mass of the normalised map on the clean top-k pixels;
    ``mass-center``: distance of the map's center of mass from the clean one;
    ``targeted``: the mass on a target region (a square of about k pixels in the corner
    farthest from the clean center of mass, unless a region is given).
    """

    def __init__(self, kind: str, clean: Tensor, k: int, region: Tensor | None = None) -> None:
        self.kind = kind
        b, h, w = clean.shape
        k = max(1, min(k, h * w))
        if kind == "topk":
            self.mask = topk_mask(clean.reshape(b, -1), k).reshape(b, h, w).to(clean.dtype)
        elif kind == "mass-center":
            self.com = center_of_mass(clean)
        elif kind == "targeted":
            self.mask = (region if region is not None else corner_region(clean, k)).to(clean)
        else:
            raise AttribAuditError(f"unknown IFIA goal {kind!r}")

    def __call__(self, m: Tensor) -> Tensor:
        """Per-sample dissimilarity of reduced maps (B, H, W) -> (B,)."""
        if self.kind == "topk":
            return -(normalized(m) * self.mask).sum((1, 2))
        if self.kind == "mass-center":
            return (center_of_mass(m) - self.com).norm(dim=1)
        return (normalized(m) * self.mask).sum((1, 2))


def corner_region(clean: Tensor, k: int) -> Tensor:
    """(B, H, W) masks: a square of about k pixels in the corner farthest from the clean
    center of mass."""
    b, h, w = clean.shape
    side = max(1, min(h, w, round(k**0.5)))
    com = center_of_mass(clean)
    masks = torch.zeros(b, h, w, dtype=torch.bool, device=clean.device)
    for i in range(b):  # B corner choices; the work itself stays batched
        top = 0 if com[i, 0] >= (h - 1) / 2 else h - side
        left = 0 if com[i, 1] >= (w - 1) / 2 else w - side
        masks[i, top : top + side, left : left + side] = True
    return masks
