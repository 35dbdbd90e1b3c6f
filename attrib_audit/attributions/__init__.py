"""Attribution methods. Each: ``method(model, x, target, *, create_graph=False, **params)``
returning a tensor shaped like ``x`` (DESIGN section 3)."""

from __future__ import annotations

from attrib_audit.attributions._common import EXPLAIN_CHOICES, gradients, quantity
from attrib_audit.attributions.integrated_gradients import (
    IG_METHODS,
    integrated_gradients,
    make_baseline,
    quadrature,
)
from attrib_audit.attributions.saliency import saliency
from attrib_audit.attributions.smooth_grad import smooth_grad
from attrib_audit.attributions.uniform_grad import uniform_grad

__all__ = [
    "EXPLAIN_CHOICES",
    "IG_METHODS",
    "gradients",
    "integrated_gradients",
    "make_baseline",
    "quadrature",
    "quantity",
    "register_builtins",
    "saliency",
    "smooth_grad",
    "uniform_grad",
]


def register_builtins(registry) -> None:
    """The four built-in methods, with their defaults. ``value_range`` is filled per model."""
    registry.register("sm", saliency, create_graph=True, stochastic=False, title="Saliency map")
    registry.register(
        "ig",
        integrated_gradients,
        defaults={"steps": 50, "method": "riemann_trapezoid", "baseline": "zeros"},
        create_graph=True,
        stochastic=False,
        uses_value_range=True,
        title="Integrated Gradients",
    )
    registry.register(
        "sg",
        smooth_grad,
        defaults={"samples": 50, "sigma": 0.15},
        create_graph=True,
        stochastic=True,
        uses_value_range=True,
        title="SmoothGrad",
    )
    registry.register(
        "ug",
        uniform_grad,
        defaults={"samples": 50, "radius": 0.1},
        create_graph=True,
        stochastic=True,
        uses_value_range=True,
        title="UniformGrad",
    )
