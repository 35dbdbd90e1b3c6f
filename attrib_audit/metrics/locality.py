"""Locality-sensitive (LENS) metrics: a top pixel that moves a little is not lost (Kamath et
al., "Rethinking Robustness of Model Attributions", AAAI 2024, arXiv 2312.10534).

Plain top-k intersection counts a clean top-k pixel as lost when the perturbed map ranks its
neighbour instead, so random noise, which shuffles pixels locally, looks nearly as damaging
as an attack that moves the attribution elsewhere. Here a pixel's neighbourhood is the
(2w+1) x (2w+1) window around it (every pixel within L-inf distance ``neighbourhood``, cut at
the image border).

- ``lens_topk``: the fraction of the clean top-k pixels with a perturbed top-k pixel in their
  window (the authors' code calls this direction LENS-prec);
- ``lens_spearman``, ``lens_kendall``: the rank correlations of the two maps after each
  pixel takes the largest value in its window (a max-pool of stride 1), so a peak that
  shifts within the window keeps its rank;
- ``topk_div``: ``lens_topk`` between diverse top-k sets, chosen greedily from the largest
  pixel down, skipping any pixel in the window of one already chosen (so k pixels are not k
  copies of one blob); normalised by the size of the clean set, which is below k when the
  image has no room for k separated pixels.

A top-k leaves out pixels tied at its k-th value, as
:func:`~attrib_audit.metrics.topk.surely_topk` does, and a diverse set the pixels at the map's
smallest value (a Grad-CAM's zeros, when fewer than k pixels are positive), so the fractions
are of the clean map's ranked top pixels.

The paper's code, not its text, was available to fix ``lens_topk`` and ``topk_div``; the
paper's LENS rank correlations are described only in words, and the max-pool form above is
this project's definition of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from attrib_audit.errors import AttribAuditError
from attrib_audit.metrics.rank import kendall, spearman
from attrib_audit.metrics.topk import surely_topk
from attrib_audit.params import Params, setting
from attrib_audit.registry import METRICS


@dataclass(frozen=True)
class LensParams(Params):
    neighbourhood: int = setting(
        1, "how far (pixels, L-inf) a top pixel may move and still count: 1 is a 3x3 window", min=0
    )


def _maps(a: Tensor, b: Tensor) -> None:
    if a.dim() != 3 or a.shape != b.shape:
        raise ValueError(
            f"maps must have the same shape (B, H, W), got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def window_max(a: Tensor, w: int) -> Tensor:
    """Each pixel replaced by the largest value within L-inf distance ``w`` (in the image).

    Shape:
        a: (B, H, W)
        returns: (B, H, W)
    """
    if w == 0:
        return a
    return F.max_pool2d(a[:, None], 2 * w + 1, stride=1, padding=w)[:, 0]


def near(mask: Tensor, w: int) -> Tensor:
    """Pixels within L-inf distance ``w`` of a pixel of ``mask`` (B, H, W) bool."""
    return window_max(mask.to(torch.float32), w) > 0


def _top(a: Tensor, k: int) -> Tensor:
    b, h, w = a.shape
    if k < 1:
        raise AttribAuditError(f"k must be >= 1, got {k}")
    return surely_topk(a.reshape(b, -1), min(k, h * w)).reshape(b, h, w)


def _kept(clean: Tensor, other: Tensor, w: int) -> Tensor:
    """The fraction of ``clean``'s pixels with a pixel of ``other`` in their window (NaN when
    ``clean`` has none)."""
    hit = (clean & near(other, w)).sum((1, 2))
    return hit.to(torch.float64) / clean.sum((1, 2))


@METRICS.declare("lens_topk", params=LensParams)
def lens_topk(a: Tensor, b: Tensor, *, k: int = 100, neighbourhood: int = 1) -> Tensor:
    """The fraction of ``a``'s top-k pixels that have one of ``b``'s top-k pixels within
    ``neighbourhood``; with 0 it is the top-k intersection.

    Shape:
        a, b: (B, H, W) reduced maps (``a`` the clean one)
        returns: (B,)
    """
    _maps(a, b)
    return _kept(_top(a, k), _top(b, k), neighbourhood).to(_dtype(a))


@METRICS.declare("lens_spearman", params=LensParams)
def lens_spearman(a: Tensor, b: Tensor, *, neighbourhood: int = 1) -> Tensor:
    """Spearman's rho of the two maps max-pooled over the window.

    Shape:
        a, b: (B, H, W)
        returns: (B,)
    """
    _maps(a, b)
    return spearman(window_max(a, neighbourhood), window_max(b, neighbourhood))


@METRICS.declare("lens_kendall", params=LensParams)
def lens_kendall(a: Tensor, b: Tensor, *, neighbourhood: int = 1) -> Tensor:
    """Kendall's tau-b of the two maps max-pooled over the window.

    Shape:
        a, b: (B, H, W)
        returns: (B,)
    """
    _maps(a, b)
    return kendall(window_max(a, neighbourhood), window_max(b, neighbourhood))


def diverse_topk(a: Tensor, k: int, w: int) -> Tensor:
    """Up to k pixels per map, greedily from the largest down, each outside the window of
    every one chosen before it (ties: the first in row-major order, as ``argmax``), never one
    at the map's smallest value: a Grad-CAM's zeros rank nothing, and the order of the pixels
    alone would pick among them.

    Shape:
        a: (B, H, W)
        returns: (B, H, W) bool
    """
    if k < 1:
        raise AttribAuditError(f"k must be >= 1, got {k}")
    b, h, wd = a.shape
    values = a.reshape(b, -1)
    free = values > values.amin(1, keepdim=True)
    chosen = torch.zeros_like(free)
    span = torch.arange(-w, w + 1, device=a.device)
    dr, dc = torch.meshgrid(span, span, indexing="ij")
    dr, dc = dr.reshape(1, -1), dc.reshape(1, -1)
    rows = torch.arange(b, device=a.device)[:, None].expand(b, dr.shape[1])
    for _ in range(min(k, h * wd)):
        idx = torch.where(free, values, -torch.inf).argmax(1)
        ok = free.gather(1, idx[:, None])[:, 0]
        if not ok.any():
            break
        chosen[ok, idx[ok]] = True
        r, c = idx[:, None] // wd + dr, idx[:, None] % wd + dc
        inside = (r >= 0) & (r < h) & (c >= 0) & (c < wd) & ok[:, None]
        free[rows[inside], (r * wd + c)[inside]] = False
    return chosen.reshape(b, h, wd)


@METRICS.declare("topk_div", params=LensParams)
def topk_div(a: Tensor, b: Tensor, *, k: int = 100, neighbourhood: int = 1) -> Tensor:
    """The fraction of ``a``'s diverse top-k pixels that have one of ``b``'s diverse top-k
    pixels within ``neighbourhood``.

    Shape:
        a, b: (B, H, W) reduced maps (``a`` the clean one)
        returns: (B,)
    """
    _maps(a, b)
    w = neighbourhood
    return _kept(diverse_topk(a, k, w), diverse_topk(b, k, w), w).to(_dtype(a))


def _dtype(a: Tensor) -> torch.dtype:
    return a.dtype if a.is_floating_point() else torch.float32
