"""Certified top-k attributions by randomized smoothing (Anani et al., "Pixel-level Certified
Explanations via Randomized Smoothing", ICML 2025, arXiv 2506.15499).

Each pixel is a binary classifier of the noisy input: is it in the top-k of the map at
x + N(0, sigma^2 I)? Smoothing it over the noise gives a classifier that, like Cohen et al.'s,
keeps its answer for every input within L2 distance R = sigma * Phi^-1(p) of x, where p
bounds from below the probability of the majority answer. Per pixel, the first ``n0`` draws
pick the majority answer; the other ``samples - n0`` count how often it comes back, and the
one-sided Clopper-Pearson bound at level alpha / N (Bonferroni over the N pixels, so that the
certificates of all pixels hold together with probability 1 - alpha) gives p. A pixel with
p <= 1/2 abstains.

A draw's top-k is the pixels above its (k+1)-th largest value, so ties (a map of one value,
a Grad-CAM rectified to zero outside fewer than k pixels) are in no draw's top-k rather than
in every draw's by index order. ``certified_topk`` at radius r: the fraction of k that the
smoothed top-k pixels certified beyond r make up, the mean over samples. The paper
certifies at a threshold tau = 0.75, i.e. radius sigma * Phi^-1(0.75), the default radius
here; the report also gives the fraction along radii up to the largest any pixel can reach
with ``samples``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats
from torch import Tensor

from attrib_audit.errors import SettingError
from attrib_audit.metrics.reduce import reduce_map
from attrib_audit.metrics.topk import surely_topk
from attrib_audit.params import Params, setting

PAPER_TAU = 0.75  # Anani et al.'s threshold: a pixel is certified when p > tau
CURVE_POINTS = 8  # radii in the report's curve, from 0 to the largest certifiable


@dataclass(frozen=True)
class CertifyParams(Params):
    sigma: float = setting(0.15, "std of the Gaussian noise, in the value range's units", above=0)
    samples: int = setting(100, "noisy maps per sample, n0 of them to pick the answers", min=2)
    n0: int = setting(10, "draws that pick each pixel's majority answer", min=1)
    alpha: float = setting(0.001, "chance that any certificate of a sample is wrong", above=0)
    radius: float | None = setting(
        None,
        "L2 radius of certified_topk (None: sigma * Phi^-1(0.75), the paper's tau = 0.75)",
        min=0,
    )

    def check(self) -> None:
        if self.n0 >= self.samples:
            raise SettingError("n0", f"must be below samples ({self.samples}), got {self.n0}")
        if self.alpha >= 1:
            raise SettingError("alpha", f"must be below 1, got {self.alpha}")

    @property
    def at(self) -> float:
        """The radius ``certified_topk`` is measured at."""
        return self.sigma * stats.norm.ppf(PAPER_TAU) if self.radius is None else self.radius

    def reachable(self, pixels: int) -> float:
        """The largest radius any pixel can be certified at: every counted draw agreeing."""
        return self.sigma * float(
            stats.norm.ppf(
                lower_bound(self.samples - self.n0, self.samples - self.n0, self.alpha / pixels)
            )
        )

    def curve(self, pixels: int) -> list[float]:
        top = self.reachable(pixels)
        return [top * i / (CURVE_POINTS - 1) for i in range(CURVE_POINTS)]


def lower_bound(successes, n: int, level: float):
    """One-sided Clopper-Pearson lower bound on a binomial proportion: with probability
    1 - ``level`` the proportion is at least this (0 for no success)."""
    s = np.asarray(successes, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        b = stats.beta.ppf(level, s, n - s + 1)
    return np.where(s > 0, b, 0.0)


@dataclass(frozen=True)
class Certificate:
    """Per sample and pixel (B, N): the smoothed answer (in the top-k or not) and the L2
    radius it holds within (-inf where the pixel abstains)."""

    top: Tensor
    radius: Tensor
    k: int

    def certified_topk(self, r: float) -> Tensor:
        """(B,) the fraction of k that the smoothed top-k pixels certified beyond ``r`` make."""
        return ((self.radius > r) & self.top).sum(1).to(torch.float64) / self.k

    def abstained(self) -> Tensor:
        """(B,) the fraction of pixels that abstain."""
        return torch.isinf(self.radius).to(torch.float64).mean(1)


def certify_topk(
    method: Callable[..., Tensor],
    model: torch.nn.Module,
    x: Tensor,
    target: Tensor,
    *,
    k: int,
    params: CertifyParams,
    reduce: str = "sum-abs",
    generator: torch.Generator | None = None,
) -> Certificate:
    """The certificate of the top-k pixels of ``method``'s maps of ``target`` at x.

    Shape:
        x: (B, C, H, W)
        target: (B,)
    """
    n0, n = params.n0, params.samples - params.n0
    first = second = None
    for i in range(params.samples):
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        m = reduce_map(method(model, x + params.sigma * noise, target).detach(), reduce)
        top = surely_topk(m.flatten(1), k).to(torch.int64)
        if i < n0:
            first = top if first is None else first + top
        else:
            second = top if second is None else second + top
    answer = 2 * first > n0  # ties: not in the top-k
    agree = torch.where(answer, second, n - second).cpu().numpy()
    p = lower_bound(agree, n, params.alpha / agree.shape[1])
    with np.errstate(divide="ignore"):
        radius = np.where(p > 0.5, params.sigma * stats.norm.ppf(p), -np.inf)
    return Certificate(answer.cpu(), torch.from_numpy(radius), k)


def summary(cert: Certificate, params: CertifyParams) -> dict:
    """Per-sample values the report keeps: certified_topk at the radius, along the curve,
    and the abstained fraction."""
    pixels = cert.top.shape[1]
    return {
        "certified_topk": cert.certified_topk(params.at).tolist(),
        "curve": [cert.certified_topk(r).tolist() for r in params.curve(pixels)],
        "abstained": cert.abstained().tolist(),
        "smoothed_k": cert.top.sum(1).tolist(),
    }


def check_radius(params: CertifyParams, pixels: int) -> None:
    """A radius no pixel can reach with these samples certifies nothing by construction; a
    gate on it would fail for want of samples, not for the model."""
    top = params.reachable(pixels)
    if params.at >= top or math.isnan(top):
        raise SettingError(
            "certify.radius",
            f"{params.at:.4g} cannot be certified with {params.samples} samples (n0 "
            f"{params.n0}, alpha {params.alpha:g}, {pixels} pixels): the largest reachable "
            f"radius is {top:.4g}; raise samples or sigma, or lower the radius",
        )
