"""What the training objectives share: the loss value with named terms, IG of the loss along a
path, and projected gradient ascent for inner maximisations."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attrib_audit.attacks._common import project, uniform_in_ball
from attrib_audit.attributions import integrated_gradients


@dataclass(frozen=True)
class Loss:
    """A scalar loss and the named terms it is the sum of (logged during training)."""

    total: Tensor
    terms: dict[str, Tensor]

    def __post_init__(self) -> None:
        if self.total.dim() != 0:
            raise ValueError(f"a loss must be a scalar, got shape {tuple(self.total.shape)}")


def loss_of(**terms: Tensor) -> Loss:
    return Loss(sum(terms.values()), terms)  # type: ignore[arg-type]


def ce(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    return F.cross_entropy(model(x), y)


def ig_of_loss(model: nn.Module, start: Tensor, end: Tensor, y: Tensor, steps: int) -> Tensor:
    """IG of the cross-entropy of ``y`` along the straight path from ``start`` to ``end``,
    left Riemann sum with ``steps`` segments (RAR eq. 3); differentiable in ``end`` and in the
    model's parameters.

    Shape:
        start, end: (B, C, H, W)
        returns: (B, C, H, W)
    """
    return integrated_gradients(
        model,
        end,
        y,
        steps=steps,
        method="riemann_left",
        baseline=start,
        explain="loss",
        create_graph=True,
    )


def l1(t: Tensor) -> Tensor:
    """Per-sample L1 norm. Shape: (B, ...) -> (B,)"""
    return t.abs().flatten(1).sum(1)


def ascend(
    objective: Callable[[Tensor], Tensor],
    x: Tensor,
    *,
    epsilon: float,
    steps: int,
    step_size: float,
    value_range: tuple[float, float],
    generator: torch.Generator | None = None,
    random_start: bool = True,
) -> Tensor:
    """Maximise ``objective(x')`` (per-sample values, (B,)) over the epsilon ball by signed
    steps from a random start; returns x' detached. The inner maximisation of every robust
    objective."""
    x = x.detach()
    x_adv = uniform_in_ball(x, epsilon, value_range, generator) if random_start else x.clone()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(objective(x_adv).sum(), x_adv)
        x_adv = project(x_adv.detach() + step_size * grad.sign(), x, epsilon, value_range)
    return x_adv.detach()


def inner_max(
    attacker: nn.Module,
    objective: Callable[[nn.Module, Tensor], Tensor],
    x: Tensor,
    *,
    epsilon: float,
    steps: int,
    step_size: float,
    value_range: tuple[float, float],
    generator: torch.Generator | None = None,
) -> Tensor:
    """``argmax_{x' in N(x, eps)} objective(attacker, x')`` by :func:`ascend`, with the
    attacker's parameters frozen meanwhile (no parameter graph is built)."""
    with frozen(attacker):
        return ascend(
            lambda z: objective(attacker, z),
            x,
            epsilon=epsilon,
            steps=steps,
            step_size=step_size,
            value_range=value_range,
            generator=generator,
        )


class frozen:
    """Parameters without gradients during an inner maximisation (restored after)."""

    def __init__(self, model: nn.Module) -> None:
        self.params = [p for p in model.parameters() if p.requires_grad]

    def __enter__(self) -> None:
        for p in self.params:
            p.requires_grad_(False)

    def __exit__(self, *exc) -> None:
        for p in self.params:
            p.requires_grad_(True)
