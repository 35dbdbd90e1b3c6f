"""Projected gradient descent on the cross-entropy (Madry et al.): adversarial accuracy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attrib_audit.attacks._common import check_args, make_generator, preserved, signed_steps
from attrib_audit.params import Params, setting
from attrib_audit.registry import ATTACKS


@dataclass(frozen=True)
class PGDParams(Params):
    restarts: int = setting(0, "extra random starts", min=0)
    random_start: bool = setting(True, "start at a uniform point of the ball, not at x")


@ATTACKS.declare("pgd", params=PGDParams, keeps_prediction=False)
def pgd(
    model: nn.Module,
    surrogate: nn.Module | None,
    x: Tensor,
    target: Tensor,
    method: Callable[..., Tensor] | None = None,
    *,
    epsilon: float,
    steps: int = 100,
    step_size: float = 0.01,
    restarts: int = 0,
    random_start: bool = True,
    value_range: tuple[float, float] = (0.0, 1.0),
    seed: int | None = None,
) -> Tensor:
    """L-inf PGD maximising the cross-entropy of ``target`` (the true labels) on ``model``,
    from a random start in the ball. Unlike the attribution attacks it aims to change the
    prediction; per sample, the first restart that does is kept.

    Shape:
        x: (B, C, H, W)
        target: (B,) true labels
        returns: (B, C, H, W)
    """
    check_args(x, epsilon, steps, step_size)
    x = x.detach()
    with preserved(model):

        def wrong(x_adv: Tensor) -> Tensor:
            with torch.no_grad():
                return (model(x_adv).argmax(1) != target).to(x.dtype)

        return signed_steps(
            lambda z: F.cross_entropy(model(z), target, reduction="none"),
            x,
            epsilon=epsilon,
            steps=steps,
            step_size=step_size,
            value_range=value_range,
            restarts=restarts,
            random_start=random_start,
            generator=make_generator(x, seed),
            score=wrong,
            best_score=torch.full((x.shape[0],), -torch.inf, dtype=x.dtype, device=x.device),
            keep="restart",
        )
