"""Attacks on attributions. Each:
``attack(model, surrogate, x, target, method, *, epsilon, steps, step_size, **params)``
returning x_adv in the epsilon ball and the value range (DESIGN section 3)."""

from __future__ import annotations

from attrib_audit.attacks._common import preserved, project
from attrib_audit.attacks.ifia import ifia, ifia_mass_center, ifia_targeted, ifia_topk
from attrib_audit.attacks.manipulate import manipulate
from attrib_audit.attacks.noise import random_noise
from attrib_audit.attacks.pgd import pgd

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
    "register_builtins",
]


def register_builtins(registry) -> None:
    """``keeps_prediction``: the attack returns x where no prediction-keeping point was found.
    ``uses_k``: it takes ``attack_k``. ``second_order``: it differentiates the map.
    ``iterative``: it needs ``steps >= 1`` (zero steps would return x and prove nothing)."""
    for name, fn in (
        ("ifia-topk", ifia_topk),
        ("ifia-mass-center", ifia_mass_center),
        ("ifia-targeted", ifia_targeted),
    ):
        registry.register(
            name, fn, keeps_prediction=True, uses_k=True, second_order=True, iterative=True
        )
    registry.register(
        "manipulate",
        manipulate,
        keeps_prediction=True,
        uses_k=False,
        second_order=True,
        iterative=True,
    )
    registry.register(
        "random",
        random_noise,
        keeps_prediction=True,
        uses_k=False,
        second_order=False,
        iterative=False,
    )
    registry.register(
        "pgd", pgd, keeps_prediction=False, uses_k=False, second_order=False, iterative=True
    )
