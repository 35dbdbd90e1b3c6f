"""Contrastive and weighted attribution regularisers (Sarkar et al.: CACR + WACR, Eqs. 4-12,
Algorithm 1)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attrib_audit.attributions import integrated_gradients
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
class CacrWacrParams(IGAdversaryParams):
    lam: float = setting(1.0, "common weight of the CACR and WACR terms", min=0)
    m: int = setting(50, "IG segments in the outer step", min=1)


def ig_of_probability(model: nn.Module, x: Tensor, cls: Tensor, steps: int) -> Tensor:
    """IG of the softmax output of class ``cls`` from the all-zero image to x (f_TCI /
    f_NCI of the paper), differentiable in x and the parameters."""
    return integrated_gradients(
        model,
        x,
        cls,
        steps=steps,
        method="riemann_left",
        baseline="zeros",
        explain="probability",
        create_graph=True,
    )


def cacr(ig_true: Tensor, ig_negative: Tensor) -> Tensor:
    """``KL(P_ME || P_NCA) - KL(P_ME || P_TCA)`` per sample (Eqs. 6, 11), with P the softmax of
    IG over all input entries and P_ME uniform: ``mean_i(log P_TCA(i) - log P_NCA(i))``.

    Shape: (B, ...) -> (B,)
    """
    log_t = F.log_softmax(ig_true.flatten(1), dim=1)
    log_n = F.log_softmax(ig_negative.flatten(1), dim=1)
    return (log_t - log_n).mean(1)


def wacr(base: Tensor, change: Tensor) -> Tensor:
    """``S(dA on P1) + S(A * dA on P2)`` per sample (Eq. 9), S the L1 norm; P1 the entries
    where A and dA differ in sign, P2 the rest.

    Shape: (B, ...) -> (B,)
    """
    product = base * change
    p1 = product < 0
    return l1(torch.where(p1, change, 0.0)) + l1(torch.where(p1, 0.0, product))


def most_confusing(logits: Tensor, y: Tensor) -> Tensor:
    """The class with the highest logit other than y (the most confusing negative class)."""
    masked = logits.detach().clone()
    masked.scatter_(1, y[:, None], float("-inf"))
    return masked.argmax(1)


@OBJECTIVES.declare("cacr-wacr", params=CacrWacrParams)
def cacr_wacr(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    epsilon: float = 0.1,
    lam: float = 1.0,
    m: int = 50,
    m_attack: int = 10,
    steps: int = 20,
    step_size: float = 0.01,
    value_range: tuple[float, float] = (0.0, 1.0),
    generator: torch.Generator | None = None,
    attack_model: nn.Module | None = None,
    x_adv: Tensor | None = None,
) -> Loss:
    """``CE(x') + lambda (L_CACR + L_WACR)`` (Eq. 10 with the common weight lambda), x' from
    the inner maximisation of ``CE(x') + ||IG^{L_TCI}(x, x')||_1`` (Eq. 12) by PGD from a
    uniform start. IG with ``m`` segments in the outer step (the paper's 50) and ``m_attack``
    in the attack step; Fashion-MNIST defaults (eps 0.1, 20 steps of 0.01, m_attack 10).

    The appendix argues L_CACR >= 0; that does not hold in general (the softmax over pixels of
    IG is not the class probability), so it is not assumed.
    """
    if x_adv is None:

        def inner(m: nn.Module, z: Tensor) -> Tensor:
            return F.cross_entropy(m(z), y, reduction="none") + l1(ig_of_loss(m, x, z, y, m_attack))

        x_adv = inner_max(
            attack_model or model,
            inner,
            x,
            epsilon=epsilon,
            steps=steps,
            step_size=step_size,
            value_range=value_range,
            generator=generator,
        )
    with torch.no_grad():
        negative = most_confusing(model(x_adv), y)
    ig_true_adv = ig_of_probability(model, x_adv, y, m)
    ig_neg_adv = ig_of_probability(model, x_adv, negative, m)
    base = ig_of_probability(model, x, y, m)
    return loss_of(
        ce_adv=ce(model, x_adv, y),
        cacr=lam * cacr(ig_true_adv, ig_neg_adv).mean(),
        wacr=lam * wacr(base, ig_true_adv - base).mean(),
    )
