"""SmoothGrad: the saliency map averaged over Gaussian noise (SSR paper, Def. 3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from attrib_audit.attributions.noise import gaussian, noise_tunnel
from attrib_audit.params import Params, setting
from attrib_audit.registry import METHODS


@dataclass(frozen=True)
class SmoothGradParams(Params):
    samples: int = setting(50, "noise samples", min=1)
    sigma: float = setting(0.15, "noise std as a fraction of the value range", min=0)


@METHODS.declare("sg", params=SmoothGradParams, title="SmoothGrad", stochastic=True)
def smooth_grad(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    *,
    samples: int = 50,
    sigma: float = 0.15,
    value_range: tuple[float, float] = (0.0, 1.0),
    **tunnel: Any,
) -> Tensor:
    """Mean over ``samples`` draws of the gradient at ``x + N(0, s^2)``.

    ``s = sigma * (hi - lo)``: sigma is a fraction of the value range, as in the SmoothGrad
    paper. The other keywords (``noise``,
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
        draw=gaussian(sigma * (value_range[1] - value_range[0])),
        samples=samples,
        **tunnel,
    )
