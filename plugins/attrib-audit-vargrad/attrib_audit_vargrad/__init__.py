"""VarGrad (Adebayo et al. 2018): the per-feature variance of the input gradient under
Gaussian noise. Where SmoothGrad averages noisy gradients, VarGrad measures how much they
disagree, which highlights features whose importance is unstable."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from attrib_audit.attributions.noise import gaussian, noise_tunnel
from attrib_audit.params import Params, setting
from attrib_audit.registry import METHODS

__all__ = ["VarGradParams", "vargrad"]


@dataclass(frozen=True)
class VarGradParams(Params):
    samples: int = setting(20, "noise samples", min=1)
    sigma: float = setting(0.15, "noise std as a fraction of the value range", min=0)


@METHODS.declare("vargrad", params=VarGradParams, title="VarGrad", stochastic=True)
def vargrad(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    *,
    samples: int = 20,
    sigma: float = 0.15,
    value_range: tuple[float, float] = (0.0, 1.0),
    **tunnel: Any,
) -> Tensor:
    """``Var_n[grad f_y(x + e_n)]``, ``e_n ~ N(0, s^2)``, ``s = sigma * (hi - lo)``.

    The population variance over ``samples`` draws (zero for a single draw), by attrib-audit's
    noise tunnel, which takes the other keywords (``noise``, ``seed``, ``generator``,
    ``explain``, ``create_graph``, ``max_batch``); ``create_graph=True`` keeps the map
    differentiable in x, so attacks can target it.

    Shape:
        x: (B, C, H, W)
        target: (B,)
        noise: (samples, B, C, H, W), optional
        returns: (B, C, H, W)
    """
    return noise_tunnel(
        model,
        x,
        target,
        draw=gaussian(sigma * (value_range[1] - value_range[0])),
        samples=samples,
        aggregate="var",
        **tunnel,
    )
