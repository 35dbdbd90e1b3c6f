"""Metrics comparing two attribution maps per sample: each ``metric(a, b, **settings) -> (B,)``
(docs/CONTRIBUTING.md, "Add a metric"). Every module of this package is imported by the
metric registry; a module declaring a metric with ``@METRICS.declare`` adds it."""

from __future__ import annotations

from attrib_audit.metrics.aggregate import Summary, auc_log2, summarize
from attrib_audit.metrics.cosine import cosine_distance
from attrib_audit.metrics.locality import lens_kendall, lens_spearman, lens_topk, topk_div
from attrib_audit.metrics.location import center_of_mass, com_dislocation
from attrib_audit.metrics.rank import average_ranks, kendall, spearman
from attrib_audit.metrics.reduce import REDUCTIONS, reduce_map
from attrib_audit.metrics.sensitivity import (
    avg_sensitivity,
    local_lipschitz,
    max_sensitivity,
    ris,
)
from attrib_audit.metrics.topk import topk_intersection

__all__ = [
    "REDUCTIONS",
    "Summary",
    "auc_log2",
    "avg_sensitivity",
    "average_ranks",
    "center_of_mass",
    "com_dislocation",
    "cosine_distance",
    "kendall",
    "lens_kendall",
    "lens_spearman",
    "lens_topk",
    "local_lipschitz",
    "max_sensitivity",
    "reduce_map",
    "ris",
    "spearman",
    "summarize",
    "topk_div",
    "topk_intersection",
]
