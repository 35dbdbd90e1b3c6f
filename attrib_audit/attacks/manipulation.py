"""The manipulate attack (Dombrowski et al. 2019; SSR Sec. 2, 5)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from attrib_audit.attacks._common import (
    check_args,
    make_generator,
    map_and_prediction,
    normalized,
    predict,
    preserved,
    reduced,
    signed_steps,
)
from attrib_audit.params import Params, setting
from attrib_audit.registry import ATTACKS


@dataclass(frozen=True)
class ManipulateParams(Params):
    gamma: float = setting(1e-5, "weight of the output term (Dombrowski et al.'s 1e6/1e11)", min=0)
    beta_start: float | None = setting(
        None, "surrogate softplus beta at the first step (None: its own)", above=0
    )
    beta_end: float | None = setting(
        None, "softplus beta at the last step (None: ten times the first)", above=0
    )
    restarts: int = setting(0, "extra random starts", min=0)


def default_target_maps(clean: Tensor) -> Tensor:
    """Another sample's map for each sample (the next one in the batch); with one sample, its
    own map turned upside down and mirrored.

    Shape:
        clean: (B, H, W)
        returns: (B, H, W)
    """
    if clean.shape[0] > 1:
        return clean.roll(1, dims=0)
    return clean.flip((1, 2))


@ATTACKS.declare("manipulate", params=ManipulateParams)
def manipulate(
    model: nn.Module,
    surrogate: nn.Module,
    x: Tensor,
    target: Tensor,
    method: Callable[..., Tensor],
    *,
    epsilon: float,
    steps: int = 100,
    step_size: float = 0.01,
    gamma: float = 1e-5,
    beta_start: float | None = None,
    beta_end: float | None = None,
    target_map: Tensor | None = None,
    restarts: int = 0,
    reduce: str = "sum-abs",
    value_range: tuple[float, float] = (0.0, 1.0),
    seed: int | None = None,
) -> Tensor:
    """Move the map towards a target map while keeping the output close.

    Minimises ``mean((h(x') - h_t)^2) + gamma * mean((p(x') - p(x))^2)`` with h the map
    normalised to unit mass and p the softmax output (Dombrowski et al.'s weighting, 1e11 vs
    1e6, is ``gamma = 1e-5``), by signed steps projected to the epsilon ball and value range.
    The surrogate's softplus beta is annealed geometrically from ``beta_start`` to
    ``beta_end`` (default: its own beta to ten times it) when the surrogate supports it.
    Per sample, the iterate closest to the target on ``model`` with an unchanged prediction
    is returned (x itself if none is).

    Shape:
        x: (B, C, H, W)
        target: (B,)
        target_map: (B, H, W), optional
        returns: (B, C, H, W)
    """
    check_args(x, epsilon, steps, step_size)
    x = x.detach()
    set_beta = getattr(surrogate, "set_beta", None)
    beta0 = getattr(surrogate, "beta", None)
    with preserved(model, surrogate):
        pred = predict(model, x)
        clean = reduced(method, model, x, target, reduce).detach()
        goal = normalized(
            target_map.to(clean) if target_map is not None else default_target_maps(clean)
        )
        with torch.no_grad():
            p0 = surrogate(x).softmax(1)

        def distance(m: Tensor) -> Tensor:
            return (normalized(m) - goal).pow(2).flatten(1).mean(1)

        b0 = beta_start if beta_start is not None else beta0
        b1 = beta_end if beta_end is not None else (10 * b0 if b0 else None)

        def anneal(t: int) -> None:
            if set_beta is not None and b0 and b1:
                set_beta(b0 * math.exp(math.log(b1 / b0) * t / max(1, steps - 1)))

        def loss(z: Tensor) -> Tensor:  # ascended: minus the distance and the output change
            m = reduced(method, surrogate, z, target, reduce, create_graph=True)
            return -(distance(m) + gamma * (surrogate(z).softmax(1) - p0).pow(2).mean(1))

        def score(x_adv: Tensor) -> Tensor:
            m, pred_adv = map_and_prediction(method, model, x_adv, target, reduce)
            return torch.where(pred_adv == pred, -distance(m), -torch.inf)

        try:
            return signed_steps(
                loss,
                x,
                epsilon=epsilon,
                steps=steps,
                step_size=step_size,
                value_range=value_range,
                restarts=restarts,
                generator=make_generator(x, seed),
                score=score,
                best_score=-distance(clean),
                before_step=anneal,
            )
        finally:
            if set_beta is not None and beta0:
                set_beta(beta0)
