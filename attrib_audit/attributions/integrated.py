"""Integrated Gradients along the straight path from a baseline to x (RAR eqs. 1 and 3)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torchvision.transforms.functional import gaussian_blur

from attrib_audit.attributions._common import check_inputs, folded_gradients, make_generator
from attrib_audit.errors import AttribAuditError, SettingError
from attrib_audit.params import Params, setting
from attrib_audit.registry import METHODS

IG_METHODS: tuple[str, ...] = (
    "riemann_left",
    "riemann_right",
    "riemann_middle",
    "riemann_trapezoid",
    "gausslegendre",
)
BASELINES: tuple[str, ...] = ("zeros", "blur", "uniform")


def quadrature(steps: int, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Points ``alpha`` in [0, 1] and weights ``w`` with sum_k w_k h(alpha_k) ~ int_0^1 h.

    The Riemann rules and Gauss-Legendre are those Captum names, with one exception:
    ``riemann_trapezoid`` here is the trapezoid rule, weights 1/(n-1) with halved ends, which
    sum to 1. Captum's uses weights 1/n with halved ends, which sum to 1 - 1/n and so bias IG
    low by about 1/n.
    """
    if steps < 1:
        raise SettingError("steps", f"must be >= 1, got {steps}")
    n = steps
    if method == "riemann_left":
        return np.arange(n) / n, np.full(n, 1.0 / n)
    if method == "riemann_right":
        return np.arange(1, n + 1) / n, np.full(n, 1.0 / n)
    if method == "riemann_middle":
        return (np.arange(n) + 0.5) / n, np.full(n, 1.0 / n)
    if method == "riemann_trapezoid":
        if n < 2:
            raise SettingError("steps", "must be >= 2 for the riemann_trapezoid rule")
        w = np.full(n, 1.0 / (n - 1))
        w[0] = w[-1] = 0.5 / (n - 1)
        return np.linspace(0.0, 1.0, n), w
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(n)
        return (nodes + 1) / 2, weights / 2
    raise AttribAuditError(f"IG method must be one of {', '.join(IG_METHODS)}, got {method!r}")


def make_baseline(
    x: Tensor,
    baseline: str | Tensor | float | None,
    *,
    value_range: tuple[float, float] = (0.0, 1.0),
    blur_sigma: float = 5.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The IG baseline for ``x``: zeros, a Gaussian blur of x, uniform noise, or a given tensor.

    Baselines derived from ``x`` are detached: the path's start is a constant, not a function
    of the input an attack perturbs.

    Shape:
        x: (B, C, H, W)
        returns: (B, C, H, W)
    """
    if baseline is None or (isinstance(baseline, str) and baseline == "zeros"):
        return torch.zeros_like(x)
    if isinstance(baseline, Tensor):
        try:
            return baseline.to(x).expand_as(x)
        except RuntimeError:
            raise ValueError(
                f"baseline of shape {tuple(baseline.shape)} does not broadcast to x's "
                f"{tuple(x.shape)}"
            ) from None
    if isinstance(baseline, (int, float)):
        return torch.full_like(x, float(baseline))
    if baseline == "blur":
        if x.dim() != 4:
            raise ValueError(f"a blur baseline needs images (B, C, H, W), got {tuple(x.shape)}")
        side = min(x.shape[-2:])
        kernel = min(2 * int(2 * blur_sigma) + 1, side - 1 if side % 2 == 0 else side)
        kernel = max(kernel, 1)
        return gaussian_blur(x.detach(), [kernel, kernel], [blur_sigma, blur_sigma])
    if baseline == "uniform":
        lo, hi = value_range
        u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return u * (hi - lo) + lo
    raise AttribAuditError(
        f"baseline must be one of {', '.join(BASELINES)}, a number or a tensor, got {baseline!r}"
    )


@dataclass(frozen=True)
class IGParams(Params):
    steps: int = setting(50, "points on the path", min=1)
    method: str = setting(
        "riemann_trapezoid",
        "quadrature: riemann_left/right/middle/trapezoid or gausslegendre",
        choices=IG_METHODS,
    )
    baseline: str | float = setting(
        "zeros", "the path's start: zeros, blur, uniform or a constant value", choices=BASELINES
    )

    def check(self) -> None:
        quadrature(self.steps, self.method)  # riemann_trapezoid needs two points


@METHODS.declare("ig", params=IGParams, title="Integrated Gradients")
def integrated_gradients(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    *,
    steps: int = 50,
    method: str = "riemann_trapezoid",
    baseline: str | Tensor | float | None = "zeros",
    value_range: tuple[float, float] = (0.0, 1.0),
    seed: int | None = None,
    generator: torch.Generator | None = None,
    explain: str = "logit",
    create_graph: bool = False,
    max_batch: int | None = None,
) -> Tensor:
    """Integrated Gradients of the target along the straight path from baseline to x.

    ``(x - x_b) * sum_k w_k grad f_y(x_b + alpha_k (x - x_b))`` with the quadrature of
    :func:`quadrature`. The steps are folded into the batch dimension, in chunks of at most
    ``max_batch`` rows. With ``create_graph=True`` the result is differentiable in ``x``
    (second order), which attacks use.

    Args:
        steps: number of points on the path.
        method: "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid"
            (the correct trapezoid rule, see :func:`quadrature`) or "gausslegendre".
        baseline: "zeros" (default), "blur", "uniform", a number or a tensor.
        seed, generator: randomness of the "uniform" baseline.

    Shape:
        x: (B, C, H, W)
        target: (B,)
        returns: (B, C, H, W)
    """
    check_inputs(x, target)
    alphas, weights = quadrature(steps, method)
    gen = make_generator(x, seed, generator)
    base = make_baseline(x, baseline, value_range=value_range, generator=gen)
    shape = (-1,) + (1,) * x.dim()
    a = torch.as_tensor(alphas, dtype=x.dtype, device=x.device).reshape(shape)
    w = torch.as_tensor(weights, dtype=x.dtype, device=x.device).reshape(shape)
    delta = x - base
    grads = folded_gradients(
        model,
        base.unsqueeze(0) + a * delta.unsqueeze(0),
        target,
        explain=explain,
        create_graph=create_graph,
        max_batch=max_batch,
    )
    return delta * (w * grads).sum(0)
