"""Iterative Feature Importance Attacks (Ghorbani et al. 2019; RAR Sec. 5; CACR appendix)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import Tensor, nn

from attrib_audit.attacks._common import (
    Goal,
    check_args,
    make_generator,
    predict,
    preserved,
    project,
    reduced,
    uniform_in_ball,
)


def ifia(
    model: nn.Module,
    surrogate: nn.Module,
    x: Tensor,
    target: Tensor,
    method: Callable[..., Tensor],
    *,
    epsilon: float,
    steps: int = 100,
    step_size: float = 0.01,
    goal: str = "topk",
    attack_k: int = 100,
    restarts: int = 0,
    reduce: str = "sum-abs",
    value_range: tuple[float, float] = (0.0, 1.0),
    region: Tensor | None = None,
    seed: int | None = None,
) -> Tensor:
    """P signed steps of size ``step_size`` that increase the dissimilarity of the map from
    the clean one, projected to the epsilon ball and the value range.

    Gradients of the map come from ``surrogate`` (second order through ``method`` with
    ``create_graph=True``); the clean map, the prediction check and the choice of the best
    iterate come from ``model``. Restart 0 starts at x, later ones at a uniform point of the
    ball. Per sample, the iterate most dissimilar on ``model`` among those whose prediction is
    unchanged is returned (x itself if none is).

    Shape:
        x: (B, C, H, W)
        target: (B,) the class whose attribution is attacked
        returns: (B, C, H, W)
    """
    check_args(x, epsilon, steps, step_size)
    x = x.detach()
    with preserved(model, surrogate):
        pred = predict(model, x)
        clean = reduced(method, model, x, target, reduce).detach()
        dissimilarity = Goal(goal, clean, attack_k, region)
        best = x.clone()
        best_d = dissimilarity(clean)
        if epsilon == 0 or steps == 0:
            return best
        gen = make_generator(x, seed)
        for r in range(restarts + 1):
            x_adv = x.clone() if r == 0 else uniform_in_ball(x, epsilon, value_range, gen)
            for _ in range(steps):
                x_adv.requires_grad_(True)
                m = reduced(method, surrogate, x_adv, target, reduce, create_graph=True)
                (grad,) = torch.autograd.grad(dissimilarity(m).sum(), x_adv)
                x_adv = project(x_adv.detach() + step_size * grad.sign(), x, epsilon, value_range)
                d = dissimilarity(reduced(method, model, x_adv, target, reduce).detach())
                better = (predict(model, x_adv) == pred) & (d > best_d)
                best = torch.where(better[:, None, None, None], x_adv, best)
                best_d = torch.where(better, d, best_d)
    return best


ifia_topk = partial(ifia, goal="topk")
ifia_mass_center = partial(ifia, goal="mass-center")
ifia_targeted = partial(ifia, goal="targeted")
