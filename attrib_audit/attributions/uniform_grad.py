"""UniformGrad: the saliency map averaged over uniform noise in an L-inf cube (SSR, Def. 8)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from attrib_audit.attributions._common import check_inputs, folded_mean_gradient, make_generator
from attrib_audit.errors import AttribAuditError


def uniform_grad(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    *,
    samples: int = 50,
    radius: float = 0.1,
    value_range: tuple[float, float] = (0.0, 1.0),
    noise: Tensor | None = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    explain: str = "logit",
    create_graph: bool = False,
    max_batch: int | None = None,
) -> Tensor:
    """Mean over ``samples`` draws of the gradient at ``x + U[-r, r]^d``.

    ``r = radius * (hi - lo)``: like SmoothGrad's sigma, the radius is a fraction of the value
    range. Noise sources and batching as in :func:`smooth_grad`.

    Shape:
        x: (B, C, H, W)
        target: (B,)
        noise: (samples, B, C, H, W), optional
        returns: (B, C, H, W)
    """
    check_inputs(x, target)
    if noise is None:
        if samples < 1:
            raise AttribAuditError(f"samples must be >= 1, got {samples}")
        r = radius * (value_range[1] - value_range[0])
        gen = make_generator(x, seed, generator)
        noise = torch.rand((samples, *x.shape), generator=gen, device=x.device, dtype=x.dtype)
        noise = noise.mul_(2 * r).sub_(r)
    return folded_mean_gradient(
        model,
        x,
        target,
        noise.to(x),
        explain=explain,
        create_graph=create_graph,
        max_batch=max_batch,
    )
