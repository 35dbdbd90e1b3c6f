"""VarGrad (Adebayo et al. 2018): the per-feature variance of the input gradient under
Gaussian noise. Where SmoothGrad averages noisy gradients, VarGrad measures how much they
disagree, which highlights features whose importance is unstable."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from attrib_audit.attributions import gradients
from attrib_audit.registry import Entry

__all__ = ["ENTRY", "vargrad"]


def vargrad(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    *,
    samples: int = 20,
    sigma: float = 0.15,
    value_range: tuple[float, float] = (0.0, 1.0),
    noise: Tensor | None = None,
    seed: int | None = None,
    explain: str = "logit",
    create_graph: bool = False,
    max_batch: int | None = None,
) -> Tensor:
    """``Var_n[grad f_y(x + e_n)]``, ``e_n ~ N(0, s^2)``, ``s = sigma * (hi - lo)``.

    The population variance over ``samples`` draws (zero for a single draw). Samples are
    folded into the batch dimension in chunks of ``max_batch`` rows; ``create_graph=True``
    keeps the map differentiable in x, so attacks can target it.

    Shape:
        x: (B, C, H, W)
        target: (B,)
        noise: (samples, B, C, H, W), optional
        returns: (B, C, H, W)
    """
    if noise is None:
        if samples < 1:
            raise ValueError(f"samples must be >= 1, got {samples}")
        g = None
        if seed is not None:
            g = torch.Generator(device=x.device)
            g.manual_seed(seed)
        std = sigma * (value_range[1] - value_range[0])
        noise = torch.randn((samples, *x.shape), generator=g, device=x.device, dtype=x.dtype)
        noise = noise * std
    n = noise.shape[0]
    points = (x.unsqueeze(0) + noise.to(x)).reshape(n * x.shape[0], *x.shape[1:])
    grads = gradients(
        model,
        points,
        target.repeat(n),
        explain=explain,
        create_graph=create_graph,
        max_batch=max_batch,
    )
    grads = grads.reshape(n, *x.shape)
    return (grads - grads.mean(0, keepdim=True)).pow(2).mean(0)


ENTRY = Entry(
    "vargrad",
    vargrad,
    defaults={"samples": 20, "sigma": 0.15},
    meta={"create_graph": True, "stochastic": True, "title": "VarGrad"},
)
