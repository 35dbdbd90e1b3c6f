"""Rank correlations over all pixels: Kendall's tau-b and Spearman's rho, ties handled."""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats
from torch import Tensor

from attrib_audit.metrics.reduce import flat
from attrib_audit.registry import METRICS

# Above this many pixels the O(N^2) pairwise Kendall gives way to scipy's O(N log N) per sample.
PAIRWISE_LIMIT = 16384
_PAIR_BUDGET = 1 << 22  # pair comparisons per chunk: bounds memory of the pairwise form


def _float(t: Tensor) -> Tensor:
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def average_ranks(a: Tensor) -> Tensor:
    """1-based ranks per row, ties given their average rank (as ``scipy.stats.rankdata``).

    Shape:
        a: (B, N)
        returns: (B, N)
    """
    s = a.sort(dim=1).values.contiguous()
    a = a.contiguous()
    below = torch.searchsorted(s, a, side="left")
    upto = torch.searchsorted(s, a, side="right")
    return (below + upto + 1).to(torch.float64) / 2


@METRICS.declare("spearman")
def spearman(a: Tensor, b: Tensor) -> Tensor:
    """Spearman's rho per sample: Pearson correlation of average ranks.

    A constant map has no ranking; its correlation is NaN, as in scipy.

    Shape:
        a, b: (B, ...)
        returns: (B,)
    """
    fa, fb = _float(flat(a, b)), _float(flat(b))
    ra, rb = average_ranks(fa), average_ranks(fb)
    ra = ra - ra.mean(1, keepdim=True)
    rb = rb - rb.mean(1, keepdim=True)
    rho = (ra * rb).sum(1) / (ra.norm(dim=1) * rb.norm(dim=1))
    return rho.to(fa.dtype)


def _tied_pairs(a: Tensor) -> Tensor:
    """Number of pairs tied in each row: sum over tie groups of t (t - 1) / 2."""
    s = a.sort(dim=1).values.contiguous()
    a = a.contiguous()
    equal = torch.searchsorted(s, a, side="right") - torch.searchsorted(s, a, side="left")
    return (equal - 1).sum(1).to(torch.float64) / 2


def _kendall_pairwise(fa: Tensor, fb: Tensor) -> Tensor:
    bsz, n = fa.shape
    s = torch.zeros(bsz, dtype=torch.float64, device=fa.device)
    rows = max(1, _PAIR_BUDGET // max(1, n * bsz))
    for i in range(0, n, rows):
        da = torch.sign(fa[:, i : i + rows, None] - fa[:, None, :])
        db = torch.sign(fb[:, i : i + rows, None] - fb[:, None, :])
        s += (da * db).sum((1, 2)).to(torch.float64)
    n0 = n * (n - 1) / 2
    # every unordered pair is counted twice in the full square
    return (s / 2) / torch.sqrt((n0 - _tied_pairs(fa)) * (n0 - _tied_pairs(fb)))


@METRICS.declare("kendall")
def kendall(a: Tensor, b: Tensor) -> Tensor:
    """Kendall's tau-b per sample, over all pixels.

    Pairwise and batched up to ``PAIRWISE_LIMIT`` pixels, ``scipy.stats.kendalltau`` per sample
    above it. A constant map gives NaN, as in scipy.

    Shape:
        a, b: (B, ...)
        returns: (B,)
    """
    fa, fb = _float(flat(a, b)), _float(flat(b))
    if fa.shape[1] <= PAIRWISE_LIMIT:
        with torch.no_grad():
            return _kendall_pairwise(fa.detach(), fb.detach()).to(fa.dtype)
    na, nb = fa.detach().cpu().double().numpy(), fb.detach().cpu().double().numpy()
    taus = [stats.kendalltau(ra, rb).statistic for ra, rb in zip(na, nb, strict=True)]
    return torch.as_tensor(np.asarray(taus), dtype=fa.dtype, device=fa.device)
