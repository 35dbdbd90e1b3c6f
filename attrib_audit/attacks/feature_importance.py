"""Iterative Feature Importance Attacks (Ghorbani et al. 2019; RAR Sec. 5; CACR appendix)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor, nn

from attrib_audit.attacks._common import (
    Goal,
    check_args,
    make_generator,
    map_and_prediction,
    predict,
    preserved,
    reduced,
    signed_steps,
)
from attrib_audit.params import Params, setting
from attrib_audit.registry import ATTACKS


@dataclass(frozen=True)
class IFIAParams(Params):
    k: int | None = setting(
        None, "pixels of the clean top-k the attack pushes out (None: the audit's --k)", min=1
    )
    restarts: int = setting(0, "extra random starts", min=0)


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
    k: int = 100,
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
        dissimilarity = Goal(goal, clean, k, region)

        def score(x_adv: Tensor) -> Tensor:
            m, pred_adv = map_and_prediction(method, model, x_adv, target, reduce)
            return torch.where(pred_adv == pred, dissimilarity(m), -torch.inf)

        return signed_steps(
            lambda z: dissimilarity(reduced(method, surrogate, z, target, reduce, True)),
            x,
            epsilon=epsilon,
            steps=steps,
            step_size=step_size,
            value_range=value_range,
            restarts=restarts,
            generator=make_generator(x, seed),
            score=score,
            best_score=dissimilarity(clean),
        )


def _declare(name: str, goal: str) -> Callable[..., Tensor]:
    fn = partial(ifia, goal=goal)
    fn.__doc__ = f"IFIA with the {goal!r} goal; see :func:`ifia`."
    return ATTACKS.declare(name, params=IFIAParams)(fn)


ifia_topk = _declare("ifia-topk", "topk")
ifia_mass_center = _declare("ifia-mass-center", "mass-center")
ifia_targeted = _declare("ifia-targeted", "targeted")
