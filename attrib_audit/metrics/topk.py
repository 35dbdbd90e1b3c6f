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


@METRICS.declare("topk_intersection")
def topk_intersection(a: Tensor, b: Tensor, *, k: int = 100) -> Tensor:
    """``|topk(a) & topk(b)| / k`` per sample; 1 means the top-k pixels are unchanged.

    ``k`` larger than the number of pixels is capped to it.

    Shape:
        a, b: (B, ...) reduced maps (``a`` the clean one)
        returns: (B,)
    """
    fa, fb = flat(a, b), flat(b)
    if k < 1:
        raise AttribAuditError(f"k must be >= 1, got {k}")
    k = min(k, fa.shape[1])
    both = topk_mask(fa, k) & topk_mask(fb, k)
    return both.sum(1).to(a.dtype if a.is_floating_point() else torch.float32) / k
