"""Uniform noise in the epsilon ball: the floor every real attack must beat."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from attrib_audit.attacks._common import (
    Draws,
    check_args,
    make_generator,
    predict,
    preserved,
    uniform_in_ball,
)
from attrib_audit.errors import SettingError
from attrib_audit.params import Params, setting
from attrib_audit.registry import ATTACKS


@dataclass(frozen=True)
class RandomParams(Params):
    restarts: int = setting(0, "more draws for samples whose prediction changed", min=0)
    samples: int = setting(
        1,
        "draws per sample, each measured; a metric aggregates over those that keep the "
        "prediction (the mean; the max for max_sensitivity, local_lipschitz and ris). "
        "Quantus's sensitivity metrics use 200",
        min=1,
    )


@ATTACKS.declare("random", params=RandomParams, iterative=False)
def random_noise(
    model: nn.Module,
    surrogate: nn.Module,
    x: Tensor,
    target: Tensor,
    method: Callable[..., Tensor] | None = None,
    *,
    epsilon: float,
    steps: int = 0,
    step_size: float = 0.0,
    restarts: int = 0,
    samples: int = 1,
    value_range: tuple[float, float] = (0.0, 1.0),
    seed: int | None = None,
) -> Tensor | Draws:
    """x plus U[-epsilon, epsilon]^d, clipped to the value range; ``restarts`` more draws
    for samples whose prediction changed; x itself where every draw changed it.

    With ``samples`` > 1, the draws themselves (:class:`Draws`, ``samples`` of them, each
    x plus fresh noise): the audit measures each, as Quantus's sampled metrics do, and
    ``restarts`` is not used.

    ``steps`` and ``step_size`` are accepted for the common contract and unused.

    Shape:
        x: (B, C, H, W)
        returns: (B, C, H, W)
    """
    check_args(x, epsilon, steps, step_size)
    if samples < 1:
        raise SettingError("samples", f"must be >= 1, got {samples}")
    x = x.detach()
    if samples > 1:
        return noise_draws(x, epsilon, samples, value_range, seed)
    with preserved(model, surrogate):
        if epsilon == 0:
            return x.clone()
        pred = predict(model, x)
        gen = make_generator(x, seed)
        best = x.clone()
        done = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        for _ in range(restarts + 1):
            x_adv = uniform_in_ball(x, epsilon, value_range, gen)
            take = (predict(model, x_adv) == pred) & ~done
            best = torch.where(take[:, None, None, None], x_adv, best)
            done |= take
    return best


def noise_draws(x: Tensor, epsilon: float, samples: int, value_range, seed: int | None) -> Draws:
    """``samples`` uniform draws from the epsilon ball around x (in the value range), the
    same ones for the same seed."""

    def make():
        gen = make_generator(x, seed)
        for _ in range(samples):
            yield uniform_in_ball(x, epsilon, value_range, gen) if epsilon > 0 else x.clone()

    return Draws(samples, make)
