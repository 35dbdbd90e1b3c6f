"""Cosine distance between two maps (SSR paper, Sec. 5: cosd)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from attrib_audit.metrics.reduce import flat
from attrib_audit.registry import METRICS


@METRICS.declare("cosine_distance", on="raw", higher_is_robust=False)
def cosine_distance(a: Tensor, b: Tensor) -> Tensor:
    """``1 - cos(a, b)`` per sample over all entries: 0 for the same direction, 2 for opposite.

    The audit applies it to the raw (unreduced) maps.

    Shape:
        a, b: (B, ...)
        returns: (B,)
    """
    return 1 - F.cosine_similarity(flat(a, b), flat(b), dim=1, eps=1e-12)
