"""Training objectives. Each: ``objective(model, x, y, **params) -> Loss`` (a scalar and the
named terms it sums)."""

from __future__ import annotations

from attrib_audit.objectives._common import Loss, ig_of_loss
from attrib_audit.objectives.contrastive import cacr, cacr_wacr, wacr
from attrib_audit.objectives.curvature import hessian_vector_product, ssr, top_eigenvalue
from attrib_audit.objectives.rar import ig_norm, ig_sum_norm
from attrib_audit.objectives.standard import input_grad, madry, madry_point, natural

__all__ = [
    "Loss",
    "cacr",
    "cacr_wacr",
    "hessian_vector_product",
    "ig_norm",
    "ig_of_loss",
    "ig_sum_norm",
    "input_grad",
    "madry",
    "madry_point",
    "natural",
    "ssr",
    "top_eigenvalue",
    "wacr",
]
