"""Robust attribution regularisation (Chen et al., RAR Sec. 4): IG-NORM and IG-SUM-NORM."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attrib_audit.objectives._common import (
    IGAdversaryParams,
    Loss,
    ce,
    ig_of_loss,
    inner_max,
    l1,
    loss_of,
)
from attrib_audit.params import setting
from attrib_audit.registry import OBJECTIVES


@dataclass(frozen=True)
class IGNormParams(IGAdversaryParams):
    m_grad: int = setting(10, "IG segments in the gradient step", min=1)
    lam: float = setting(1.0, "weight of the IG-NORM term", min=0)


@dataclass(frozen=True)
class IGSumNormParams(IGAdversaryParams):
    m_grad: int = setting(10, "IG segments in the gradient step", min=1)
    beta: float = setting(1.0, "weight of the IG term inside the bracket (0: Madry)", min=0)


@OBJECTIVES.declare("ig-norm", params=IGNormParams)
def ig_norm(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    epsilon: float = 0.1,
    lam: float = 1.0,
    m_attack: int = 10,
    m_grad: int = 10,
    steps: int = 20,
    step_size: float = 0.01,
    value_range: tuple[float, float] = (0.0, 1.0),
    generator: torch.Generator | None = None,
    attack_model: nn.Module | None = None,
) -> Loss:
    """``CE(x) + lambda max_{x' in N(x, eps)} ||IG^{l_y}(x, x')||_1``.

    RAR Table 1's parameters: the adversary is PGD (``steps`` signed steps of ``step_size``
    from a random start), IG with ``m_attack`` segments in the attack step and ``m_grad`` in the
    gradient step, ``lam`` the regularisation weight.
    """
    x_adv = inner_max(
        attack_model or model,
        lambda m, z: l1(ig_of_loss(m, x, z, y, m_attack)),
        x,
        epsilon=epsilon,
        steps=steps,
        step_size=step_size,
        value_range=value_range,
        generator=generator,
    )
    reg = l1(ig_of_loss(model, x, x_adv, y, m_grad)).mean()
    return loss_of(ce=ce(model, x, y), ig_norm=lam * reg)


@OBJECTIVES.declare("ig-sum-norm", params=IGSumNormParams)
def ig_sum_norm(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    epsilon: float = 0.1,
    beta: float = 1.0,
    m_attack: int = 10,
    m_grad: int = 10,
    steps: int = 20,
    step_size: float = 0.01,
    value_range: tuple[float, float] = (0.0, 1.0),
    generator: torch.Generator | None = None,
    attack_model: nn.Module | None = None,
    x_adv: Tensor | None = None,
) -> Loss:
    """``max_{x' in N(x, eps)} [CE(x') + beta ||IG^{l_y}(x, x')||_1]``: the inner maximum by
    PGD on the whole bracket, then the bracket at that x' is the loss. With ``beta = 0`` this
    is Madry et al.'s objective. ``x_adv`` skips the inner maximisation."""
    if x_adv is None:

        def bracket(m: nn.Module, z: Tensor) -> Tensor:
            return F.cross_entropy(m(z), y, reduction="none") + beta * l1(
                ig_of_loss(m, x, z, y, m_attack)
            )

        x_adv = inner_max(
            attack_model or model,
            bracket,
            x,
            epsilon=epsilon,
            steps=steps,
            step_size=step_size,
            value_range=value_range,
            generator=generator,
        )
    terms = {"ce_adv": ce(model, x_adv, y)}
    if beta:
        terms["ig_norm"] = beta * l1(ig_of_loss(model, x, x_adv, y, m_grad)).mean()
    return loss_of(**terms)
