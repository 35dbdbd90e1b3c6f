"""Explanation sensitivity, as Quantus defines it: Max- and Avg-Sensitivity (Yeh et al. 2019),
the Local Lipschitz Estimate (Alvarez-Melis & Jaakkola 2018) and Relative Input Stability
(Agarwal et al. 2022).

Each is a statistic of one perturbation, aggregated over perturbations: Quantus draws
``nr_samples`` random ones and takes the max (or the mean, Avg-Sensitivity) of the values of
those that keep the prediction. Here each metric is the statistic of one pair (x, x') and
declares its aggregation (``over_draws``): the ``random`` attack's draws are aggregated by the
audit as Quantus does; an adversarial attack (``ifia-sensitivity``) gives the one perturbation
it found, whose value is the maximum over the points it searched.

The maps are the raw ones (B, C, H, W), as Quantus compares what the explainer returns.
"""

from __future__ import annotations

import torch
from torch import Tensor

from attrib_audit.metrics.reduce import flat
from attrib_audit.registry import METRICS

# Quantus's guards: 1e-10 under the Lipschitz quotient (similarity_func.lipschitz_constant),
# 1e-6 for zeros in Relative Input Stability (``eps_min``)
LIPSCHITZ_EPS = 1e-10
RIS_EPS_MIN = 1e-6


def _relative_change(a: Tensor, b: Tensor) -> Tensor:
    """``||(a - b) / a||`` per sample, a zero of ``a`` replaced by ``RIS_EPS_MIN``."""
    fa, fb = flat(a, b), flat(b)
    return ((fa - fb) / (fa + (fa == 0) * RIS_EPS_MIN)).norm(dim=1)


def _sensitivity(a: Tensor, b: Tensor) -> Tensor:
    fa, fb = flat(a, b), flat(b)
    return (fa - fb).norm(dim=1) / fa.norm(dim=1)


@METRICS.declare("max_sensitivity", on="raw", higher_is_robust=False, over_draws="max")
def max_sensitivity(a: Tensor, b: Tensor) -> Tensor:
    """``||e(x) - e(x')|| / ||e(x)||`` (Frobenius norms), the maximum over draws.

    Shape:
        a, b: (B, ...) the clean and perturbed maps
        returns: (B,)
    """
    return _sensitivity(a, b)


@METRICS.declare("avg_sensitivity", on="raw", higher_is_robust=False, over_draws="mean")
def avg_sensitivity(a: Tensor, b: Tensor) -> Tensor:
    """``||e(x) - e(x')|| / ||e(x)||`` (Frobenius norms), the mean over draws.

    Shape:
        a, b: (B, ...) the clean and perturbed maps
        returns: (B,)
    """
    return _sensitivity(a, b)


def _max_normalised(a: Tensor) -> Tensor:
    """Each map divided by its largest absolute value (Quantus's ``normalise_by_max``, which
    Local Lipschitz applies by default, taken per sample); a map of zeros stays zeros, where
    Quantus gives NaN (an attack that zeroes a Grad-CAM moved it by the whole clean map)."""
    top = a.abs().amax(dim=1, keepdim=True)
    return a / torch.where(top > 0, top, torch.ones_like(top))


@METRICS.declare("local_lipschitz", on="raw", higher_is_robust=False, inputs=True, over_draws="max")
def local_lipschitz(a: Tensor, b: Tensor, *, x: Tensor, x_adv: Tensor) -> Tensor:
    """``||e(x) - e(x')|| / (||x - x'|| + 1e-10)`` of maps scaled to a largest absolute
    value of 1, the maximum over draws.

    Shape:
        a, b: (B, ...) the clean and perturbed maps
        x, x_adv: (B, C, H, W) the inputs they explain
        returns: (B,)
    """
    fa, fb = _max_normalised(flat(a, b)), _max_normalised(flat(b))
    dx = (flat(x, x_adv) - flat(x_adv)).norm(dim=1)
    return (fa - fb).norm(dim=1) / (dx + LIPSCHITZ_EPS)


@METRICS.declare("ris", on="raw", higher_is_robust=False, inputs=True, over_draws="max")
def ris(a: Tensor, b: Tensor, *, x: Tensor, x_adv: Tensor) -> Tensor:
    """Relative Input Stability: ``||(e - e') / e|| / max(||(x - x') / x||, 1e-6)``, zeros of
    e and x replaced by 1e-6 under the division; the maximum over draws.

    Shape:
        a, b: (B, ...) the clean and perturbed maps
        x, x_adv: (B, C, H, W) the inputs they explain
        returns: (B,)
    """
    den = _relative_change(x, x_adv)
    den = den + (den == 0) * RIS_EPS_MIN
    return _relative_change(a, b) / den


def over_draws(values: Tensor, how: str) -> Tensor:
    """Aggregate (D, B) per-draw values over the draws, NaN (a draw that changed the
    prediction) left out; a sample with no valid draw is NaN.

    Shape:
        values: (D, B)
        returns: (B,)
    """
    valid = ~torch.isnan(values)
    n = valid.sum(0)
    if how == "max":
        out = torch.where(valid, values, -torch.inf).amax(0)
    elif how == "mean":
        out = torch.where(valid, values, 0).sum(0) / n.clamp_min(1)
    else:
        raise ValueError(f"over_draws must be 'max' or 'mean', got {how!r}")
    return torch.where(n > 0, out, torch.nan)
