"""Metrics comparing two attribution maps per sample: each ``metric(a, b, **params) -> (B,)``."""

from __future__ import annotations

from attrib_audit.metrics.aggregate import Summary, auc_log2, summarize
from attrib_audit.metrics.center_of_mass import center_of_mass, com_dislocation
from attrib_audit.metrics.cosine import cosine_distance
from attrib_audit.metrics.rank import average_ranks, kendall, spearman
from attrib_audit.metrics.reduce import REDUCTIONS, reduce_map
from attrib_audit.metrics.topk import topk_intersection

__all__ = [
    "REDUCTIONS",
    "Summary",
    "auc_log2",
    "average_ranks",
    "center_of_mass",
    "com_dislocation",
    "cosine_distance",
    "kendall",
    "reduce_map",
    "register_builtins",
    "spearman",
    "summarize",
    "topk_intersection",
]


def register_builtins(registry) -> None:
    """Built-in metrics. ``on`` says which maps they compare; ``higher_is_robust`` which way
    is better (the gate and the worst-case summary use it)."""
    registry.register(
        "topk_intersection",
        topk_intersection,
        defaults={"k": 100},
        on="reduced",
        higher_is_robust=True,
    )
    registry.register("kendall", kendall, on="reduced", higher_is_robust=True)
    registry.register("spearman", spearman, on="reduced", higher_is_robust=True)
    registry.register("com_dislocation", com_dislocation, on="reduced", higher_is_robust=False)
    registry.register("cosine_distance", cosine_distance, on="raw", higher_is_robust=False)
