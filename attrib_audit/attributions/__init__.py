"""Attribution methods. Each: ``method(model, x, target, *, create_graph=False, **settings)``
returning a tensor shaped like ``x`` (docs/CONTRIBUTING.md, "Add a method"). Every module of
this package is imported by the method registry; a module declaring a method with
``@METHODS.declare`` adds it."""

from __future__ import annotations

from attrib_audit.attributions._common import EXPLAIN_CHOICES, gradients, quantity
from attrib_audit.attributions.gradcam import grad_cam
from attrib_audit.attributions.gradient import saliency
from attrib_audit.attributions.integrated import (
    IG_METHODS,
    integrated_gradients,
    make_baseline,
    quadrature,
)
from attrib_audit.attributions.noise import noise_tunnel
from attrib_audit.attributions.smoothgrad import smooth_grad
from attrib_audit.attributions.uniformgrad import uniform_grad

__all__ = [
    "EXPLAIN_CHOICES",
    "IG_METHODS",
    "grad_cam",
    "gradients",
    "integrated_gradients",
    "make_baseline",
    "noise_tunnel",
    "quadrature",
    "quantity",
    "saliency",
    "smooth_grad",
    "uniform_grad",
]
