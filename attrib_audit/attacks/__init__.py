"""Attacks on attributions. Each:
``attack(model, surrogate, x, target, method, *, epsilon, steps, step_size, **settings)``
returning x_adv in the epsilon ball and the value range (docs/CONTRIBUTING.md, "Add an
attack"). Every module of this package is imported by the attack registry; a module declaring
an attack with ``@ATTACKS.declare`` adds it."""

from __future__ import annotations

from attrib_audit.attacks._common import preserved, project, signed_steps
from attrib_audit.attacks.feature_importance import ifia, ifia_mass_center, ifia_targeted, ifia_topk
from attrib_audit.attacks.manipulation import manipulate
from attrib_audit.attacks.noise import random_noise
from attrib_audit.attacks.projected_gradient import pgd

__all__ = [
    "ifia",
    "ifia_mass_center",
    "ifia_targeted",
    "ifia_topk",
    "manipulate",
    "pgd",
    "preserved",
    "project",
    "random_noise",
    "signed_steps",
]
