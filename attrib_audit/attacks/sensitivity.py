"""Worst-case explanation sensitivity: the perturbation that moves the map farthest (in L2)
while the prediction stays, searched for instead of sampled.

Quantus's Max-Sensitivity estimates ``max ||e(x) - e(x')|| / ||e(x)||`` over the ball by the
largest of ``nr_samples`` random draws. This attack draws the same ones (the ``random``
attack's with ``samples``, for the same seed), keeps the largest, and climbs from it by signed
steps through the surrogate; the result is never below the sampled maximum.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from attrib_audit.attacks._common import (
    check_args,
    make_generator,
    predict,
    preserved,
    signed_steps,
)
from attrib_audit.attacks.noise import noise_draws
from attrib_audit.params import Params, setting
from attrib_audit.registry import ATTACKS


@dataclass(frozen=True)
class SensitivityParams(Params):
    samples: int = setting(
        1,
        "random draws the search starts from (the best of them); as many as the random "
        "attack's samples, the search is never below the sampled maximum",
        min=1,
    )
    restarts: int = setting(0, "extra random starts of the search", min=0)


@ATTACKS.declare("ifia-sensitivity", params=SensitivityParams)
def ifia_sensitivity(
    model: nn.Module,
    surrogate: nn.Module,
    x: Tensor,
    target: Tensor,
    method: Callable[..., Tensor],
    *,
    epsilon: float,
    steps: int = 100,
    step_size: float = 0.01,
    samples: int = 1,
    restarts: int = 0,
    value_range: tuple[float, float] = (0.0, 1.0),
    seed: int | None = None,
) -> Tensor:
    """Maximise ``||e(x') - e(x)||`` (the raw map's L2 change) over the epsilon ball, keeping
    the prediction.

    The best of ``samples`` uniform draws (by the audited model's map; x itself if none keeps
    the prediction) is the start. ``steps`` signed steps of the surrogate's map change follow
    (and ``restarts`` more runs from uniform points); the iterate of largest change on
    ``model`` that keeps the prediction is kept, checked after every step.

    Shape:
        x: (B, C, H, W)
        target: (B,) the class whose attribution is attacked
        returns: (B, C, H, W)
    """
    check_args(x, epsilon, steps, step_size)
    x = x.detach()
    with preserved(model, surrogate):
        pred = predict(model, x)
        clean = method(model, x, target).detach().flatten(1)
        smooth_clean = method(surrogate, x, target).detach().flatten(1)

        def score(x_adv: Tensor) -> Tensor:
            change = (method(model, x_adv, target).detach().flatten(1) - clean).norm(dim=1)
            return torch.where(predict(model, x_adv) == pred, change, -torch.inf)

        best, best_score = x.clone(), torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for x_draw in noise_draws(x, epsilon, samples, value_range, seed):
            s = score(x_draw)
            better = s > best_score
            best = torch.where(better[:, None, None, None], x_draw, best)
            best_score = torch.where(better, s, best_score)

        def change(z: Tensor) -> Tensor:
            m = method(surrogate, z, target, create_graph=True).flatten(1)
            return (m - smooth_clean).pow(2).sum(1)  # the square: a smooth gradient at 0

        return signed_steps(
            change,
            x,
            epsilon=epsilon,
            steps=steps,
            step_size=step_size,
            value_range=value_range,
            restarts=restarts,
            generator=make_generator(x, seed),
            score=score,
            best_score=best_score,
            start=best,
        )
