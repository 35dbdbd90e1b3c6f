"""Projected gradient descent on the cross-entropy (Madry et al.): adversarial accuracy."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attrib_audit.attacks._common import (
    check_args,
    make_generator,
    preserved,
    project,
    uniform_in_ball,
)


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
        if epsilon == 0:
            return x.clone()
        gen = make_generator(x, seed)
        best = x.clone()
        fooled = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        for r in range(restarts + 1):
            x_adv = uniform_in_ball(x, epsilon, value_range, gen) if random_start else x.clone()
            for _ in range(steps):
                x_adv.requires_grad_(True)
                with torch.enable_grad():
                    loss = F.cross_entropy(model(x_adv), target, reduction="sum")
                    (grad,) = torch.autograd.grad(loss, x_adv)
                x_adv = project(x_adv.detach() + step_size * grad.sign(), x, epsilon, value_range)
            with torch.no_grad():
                wrong = model(x_adv).argmax(1) != target
            take = ~fooled if r == 0 else ~fooled & wrong
            best = torch.where(take[:, None, None, None], x_adv, best)
            fooled |= wrong
    return best
