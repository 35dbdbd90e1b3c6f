"""What the training objectives share: the loss value with named terms, IG of the loss along a
path, the inner maximisation, and the settings of the adversary."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attrib_audit.attacks._common import signed_steps
from attrib_audit.attributions import integrated_gradients
from attrib_audit.params import Params, setting


@dataclass(frozen=True)
class Loss:
    """A scalar loss and the named terms it is the sum of (logged during training)."""

    total: Tensor
    terms: dict[str, Tensor]

    def __post_init__(self) -> None:
        if self.total.dim() != 0:
            raise ValueError(f"a loss must be a scalar, got shape {tuple(self.total.shape)}")


@dataclass(frozen=True)
class AdversaryParams(Params):
    """The inner maximisation of a robust objective (defaults: the Fashion-MNIST protocol of
    RAR/CACR, eps 0.1, 20 steps of 0.01)."""

    epsilon: float = setting(0.1, "radius of the L-inf ball the adversary searches", min=0)
    steps: int = setting(20, "signed steps of the adversary", min=0)
    step_size: float = setting(0.01, "size of each step", min=0)


@dataclass(frozen=True)
class IGAdversaryParams(AdversaryParams):
    """An adversary that maximises an IG term (RAR, CACR): IG's segments in its steps."""

    m_attack: int = setting(10, "IG segments in the attack step", min=1)


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
    """``argmax_{x' in N(x, eps)} objective(attacker, x')`` by signed steps from a random
    start (:func:`~attrib_audit.attacks._common.signed_steps`, the attacks' loop), with the
    attacker's parameters frozen meanwhile (no parameter graph is built)."""
    with frozen(attacker):
        return signed_steps(
            lambda z: objective(attacker, z),
            x,
            epsilon=epsilon,
            steps=steps,
            step_size=step_size,
            value_range=value_range,
            generator=generator,
            random_start=True,
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
