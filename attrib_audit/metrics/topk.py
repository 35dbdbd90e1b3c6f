"""Top-k intersection: the fraction of the clean map's k largest pixels the other map keeps."""

from __future__ import annotations

import torch
from torch import Tensor

from attrib_audit.errors import AttribAuditError
from attrib_audit.metrics.reduce import flat
from attrib_audit.registry import METRICS


def topk_mask(a: Tensor, k: int) -> Tensor:
    """Boolean mask of each row's k largest entries.

    Shape:
        a: (B, N)
        returns: (B, N)
    """
    idx = a.topk(k, dim=1).indices
    return torch.zeros_like(a, dtype=torch.bool).scatter_(1, idx, True)


def surely_topk(a: Tensor, k: int) -> Tensor:
    """Mask of each row's k largest entries that no order of ties could leave out: those
    above the (k+1)-th largest value (all of them when k is the row's length). A map of one
    value has none, and a Grad-CAM with fewer than k positive pixels only those: its tied
    zeros would be in the top-k by index order alone, the same in every map, and count as
    kept.

    Shape:
        a: (B, N)
        returns: (B, N)
    """
    if k >= a.shape[1]:
        return torch.ones_like(a, dtype=torch.bool)
    return a > a.topk(k + 1, dim=1).values[:, -1:]  # at most k entries lie above it


@METRICS.declare("topk_intersection")
def topk_intersection(a: Tensor, b: Tensor, *, k: int = 100) -> Tensor:
    """``|topk(a) & topk(b)| / |topk(a)|`` per sample; 1 means the top-k pixels are
    unchanged. A top-k is :func:`surely_topk`'s, so ``|topk(a)|`` is k unless ``a`` ties at
    its k-th value (NaN for a map of one value).

    ``k`` larger than the number of pixels is capped to it.

    Shape:
        a, b: (B, ...) reduced maps (``a`` the clean one)
        returns: (B,)
    """
    fa, fb = flat(a, b), flat(b)
    if k < 1:
        raise AttribAuditError(f"k must be >= 1, got {k}")
    k = min(k, fa.shape[1])
    top = surely_topk(fa, k)
    both = top & surely_topk(fb, k)
    dtype = a.dtype if a.is_floating_point() else torch.float32
    return both.sum(1).to(dtype) / top.sum(1).to(dtype)
