"""Natural training, Madry et al.'s adversarial training, and input-gradient regularisation."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attrib_audit.objectives._common import AdversaryParams, Loss, ce, inner_max, loss_of
from attrib_audit.params import Params, setting
from attrib_audit.registry import OBJECTIVES


@dataclass(frozen=True)
class InputGradParams(Params):
    lam: float = setting(1.0, "weight of the input-gradient penalty", min=0)
    q: float = setting(2.0, "the penalty's norm exponent", above=0)


@OBJECTIVES.declare("natural")
def natural(model: nn.Module, x: Tensor, y: Tensor) -> Loss:
    """Cross-entropy."""
    return loss_of(ce=ce(model, x, y))


def madry_point(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    epsilon: float,
    steps: int,
    step_size: float,
    value_range,
    generator=None,
) -> Tensor:
    """The PGD point maximising the cross-entropy in the epsilon ball."""
    return inner_max(
        model,
        lambda m, z: F.cross_entropy(m(z), y, reduction="none"),
        x,
        epsilon=epsilon,
        steps=steps,
        step_size=step_size,
        value_range=value_range,
        generator=generator,
    )


@OBJECTIVES.declare("madry", params=AdversaryParams)
def madry(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    epsilon: float = 0.1,
    steps: int = 20,
    step_size: float = 0.01,
    value_range: tuple[float, float] = (0.0, 1.0),
    generator: torch.Generator | None = None,
    attack_model: nn.Module | None = None,
    x_adv: Tensor | None = None,
) -> Loss:
    """Cross-entropy at the PGD point (Madry et al.): ``max_{x' in N(x, eps)} CE(x')``.

    Defaults: the Fashion-MNIST protocol of RAR/CACR (eps 0.1, 20 steps of 0.01).
    ``x_adv`` skips the inner maximisation (tests compare objectives at one point).
    """
    if x_adv is None:
        x_adv = madry_point(
            attack_model or model,
            x,
            y,
            epsilon=epsilon,
            steps=steps,
            step_size=step_size,
            value_range=value_range,
            generator=generator,
        )
    return loss_of(ce_adv=ce(model, x_adv, y))


@OBJECTIVES.declare("input-grad", params=InputGradParams)
def input_grad(model: nn.Module, x: Tensor, y: Tensor, *, lam: float = 1.0, q: float = 2.0) -> Loss:
    """``CE + lambda ||grad_x CE||_q^q`` (Drucker & LeCun; RAR Prop. 2, where lambda is
    lambda' / eps^q). The penalty is per sample, averaged over the batch."""
    x = x.detach().requires_grad_(True)
    per_sample = F.cross_entropy(model(x), y, reduction="none")
    (g,) = torch.autograd.grad(per_sample.sum(), x, create_graph=True)
    penalty = g.abs().pow(q).flatten(1).sum(1).mean()
    return loss_of(ce=per_sample.mean(), input_grad=lam * penalty)
