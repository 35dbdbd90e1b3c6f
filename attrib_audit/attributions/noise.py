"""One noise loop for every method that averages gradients over noisy copies of x (SmoothGrad,
UniformGrad, VarGrad), in the manner of Captum's ``NoiseTunnel``: draw the noise, fold the
samples into the batch, aggregate the gradients."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor, nn

from attrib_audit.attributions._common import check_inputs, folded_gradients, make_generator
from attrib_audit.errors import AttribAuditError

# (shape, generator, like) -> noise of that shape on like's device and dtype
Draw = Callable[[tuple[int, ...], "torch.Generator | None", Tensor], Tensor]


def gaussian(std: float) -> Draw:
    """N(0, std^2) noise."""
    return lambda shape, gen, like: torch.randn(
        shape, generator=gen, device=like.device, dtype=like.dtype
    ).mul_(std)


def uniform(radius: float) -> Draw:
    """U[-radius, radius] noise."""
    return lambda shape, gen, like: (
        torch.rand(shape, generator=gen, device=like.device, dtype=like.dtype)
        .mul_(2 * radius)
        .sub_(radius)
    )


def noise_tunnel(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    *,
    draw: Draw,
    samples: int,
    aggregate: Literal["mean", "var"] = "mean",
    noise: Tensor | None = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    explain: str = "logit",
    create_graph: bool = False,
    max_batch: int | None = None,
) -> Tensor:
    """The mean (or population variance) over ``samples`` draws of the gradient at
    ``x + noise``. The noise comes from ``noise`` when given, else ``draw`` with
    ``generator``, else with a generator seeded with ``seed``, else with torch's global RNG.
    The samples are folded into the batch dimension, in chunks of at most ``max_batch`` rows.

    Shape:
        x: (B, C, H, W)
        target: (B,)
        noise: (samples, B, C, H, W), optional
        returns: (B, C, H, W)
    """
    check_inputs(x, target)
    if noise is None:
        if samples < 1:
            raise AttribAuditError(f"the noise tunnel needs samples >= 1, got {samples}")
        noise = draw((samples, *x.shape), make_generator(x, seed, generator), x)
    noise = noise.to(x)
    if noise.shape[1:] != x.shape:
        raise ValueError(f"noise must have shape (n, *x.shape), got {tuple(noise.shape)}")
    grads = folded_gradients(
        model,
        x.unsqueeze(0) + noise,
        target,
        explain=explain,
        create_graph=create_graph,
        max_batch=max_batch,
    )
    if aggregate == "mean":
        return grads.mean(0)
    if aggregate == "var":
        return (grads - grads.mean(0, keepdim=True)).pow(2).mean(0)
    raise ValueError(f"aggregate must be 'mean' or 'var', got {aggregate!r}")
