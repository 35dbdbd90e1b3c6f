"""Training objectives. Each: ``objective(model, x, y, **params) -> Loss`` (a scalar and the
named terms it sums)."""

from __future__ import annotations

from attrib_audit.objectives._common import Loss, ig_of_loss
from attrib_audit.objectives.cacr_wacr import cacr, cacr_wacr, wacr
from attrib_audit.objectives.ig_norm import ig_norm, ig_sum_norm
from attrib_audit.objectives.ssr import hessian_vector_product, ssr, top_eigenvalue
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
    "register_builtins",
    "ssr",
    "top_eigenvalue",
    "wacr",
]


def register_builtins(registry) -> None:
    """``adversarial``: the objective runs an inner maximisation (takes epsilon and friends)."""
    registry.register("natural", natural, adversarial=False)
    registry.register("madry", madry, adversarial=True)
    registry.register("ig-norm", ig_norm, adversarial=True)
    registry.register("ig-sum-norm", ig_sum_norm, adversarial=True)
    registry.register("ssr", ssr, adversarial=False)
    registry.register("cacr-wacr", cacr_wacr, adversarial=True)
    registry.register("input-grad", input_grad, adversarial=False)
