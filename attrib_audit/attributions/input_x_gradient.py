"""Input x Gradient (Shrikumar et al. 2016, "Not Just a Black Box"): the input gradient times
the input's difference from a reference value."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from attrib_audit.attributions._common import check_inputs, gradients
from attrib_audit.params import Params, setting
from attrib_audit.registry import METHODS


@dataclass(frozen=True)
class InputXGradientParams(Params):
    baseline: float = setting(
        0.0, "reference value r: the map is (x - r) * grad; 0 is the paper's input x gradient"
    )


@METHODS.declare("ixg", params=InputXGradientParams, title="Input x Gradient")
def input_x_gradient(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    *,
    baseline: float = 0.0,
    explain: str = "logit",
    create_graph: bool = False,
    max_batch: int | None = None,
) -> Tensor:
    """``(x - r) * grad f_y(x)``: one gradient, so as cheap as the saliency map; with ``r = 0``
    it is Captum's ``InputXGradient`` and IG's one-point Riemann (right) sum from a zero
    baseline. With ``create_graph=True`` the map is differentiable in x (both factors).

    Shape:
        x: (B, C, H, W)
        target: (B,)
        returns: (B, C, H, W)
    """
    check_inputs(x, target)
    grad = gradients(
        model, x, target, explain=explain, create_graph=create_graph, max_batch=max_batch
    )
    return (x - baseline) * grad
