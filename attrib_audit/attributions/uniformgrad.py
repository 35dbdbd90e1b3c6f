"""UniformGrad: the saliency map averaged over uniform noise in an L-inf cube (SSR, Def. 8)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from attrib_audit.attributions.noise import noise_tunnel, uniform
from attrib_audit.params import Params, setting
from attrib_audit.registry import METHODS


@dataclass(frozen=True)
class UniformGradParams(Params):
    samples: int = setting(50, "noise samples", min=1)
    radius: float = setting(0.1, "cube radius as a fraction of the value range", min=0)


@METHODS.declare("ug", params=UniformGradParams, title="UniformGrad", stochastic=True)
def uniform_grad(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    *,
    samples: int = 50,
    radius: float = 0.1,
    value_range: tuple[float, float] = (0.0, 1.0),
    **tunnel: Any,
) -> Tensor:
    """Mean over ``samples`` draws of the gradient at ``x + U[-r, r]^d``.

    ``r = radius * (hi - lo)``: like SmoothGrad's sigma, the radius is a fraction of the value
    range. The other keywords (``noise``,
    ``seed``, ``generator``, ``explain``, ``create_graph``, ``max_batch``) go to
    :func:`~attrib_audit.attributions.noise.noise_tunnel`, which draws the noise and folds the
    samples into the batch.

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
        draw=uniform(radius * (value_range[1] - value_range[0])),
        samples=samples,
        **tunnel,
    )
