"""SmoothGrad: the saliency map averaged over Gaussian noise (SSR paper, Def. 3)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from attrib_audit.attributions._common import check_inputs, folded_mean_gradient, make_generator
from attrib_audit.errors import AttribAuditError


def smooth_grad(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    *,
    samples: int = 50,
    sigma: float = 0.15,
    value_range: tuple[float, float] = (0.0, 1.0),
    noise: Tensor | None = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    explain: str = "logit",
    create_graph: bool = False,
    max_batch: int | None = None,
) -> Tensor:
    """Mean over ``samples`` draws of the gradient at ``x + N(0, s^2)``.

    ``s = sigma * (hi - lo)``: sigma is a fraction of the value range, as in the SmoothGrad
    paper. The noise comes from ``noise`` when given, else from ``generator``, else from a
    generator seeded with ``seed``, else from torch's global RNG. Noise samples are folded into
    the batch dimension, in chunks of at most ``max_batch`` rows.

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
        std = sigma * (value_range[1] - value_range[0])
        gen = make_generator(x, seed, generator)
        noise = torch.randn(
            (samples, *x.shape), generator=gen, device=x.device, dtype=x.dtype
        ).mul_(std)
    return folded_mean_gradient(
        model,
        x,
        target,
        noise.to(x),
        explain=explain,
        create_graph=create_graph,
        max_batch=max_batch,
    )
