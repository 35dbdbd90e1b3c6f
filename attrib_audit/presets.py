"""Papers' evaluation protocols, one word each (``--preset NAME``).

Sizes (k, an attack's k) are the papers' for their image size (``pixels``); on images of
another size they are scaled by the pixel ratio, so that the same fraction of the image is
measured. ``method_params`` and ``attack_params`` are settings of registered entries, as on the
command line (``--method-param ig.steps=50``).
"""

from __future__ import annotations

from typing import Any


def _ifia_k(k: int) -> dict[str, dict[str, int]]:
    """The papers' attack k, for every IFIA goal (the top-k pixels pushed out, or the target
    region's size)."""
    return {name: {"k": k} for name in ("ifia-topk", "ifia-mass-center", "ifia-targeted")}


PRESETS: dict[str, dict[str, Any]] = {
    # Chen et al. (RAR) Sec. 5 and Sarkar et al. (CACR) appendix: IFIA top-k on IG.
    "mnist": {
        "methods": ["ig"],
        "attacks": ["ifia-topk"],
        "epsilons": [0.3],
        "attack_params": _ifia_k(200),
        "k": 100,
        "steps": 100,
        "step_size": 0.01,
        "method_params": {"ig": {"steps": 50}},
        "pgd_steps": 100,
        "pgd_step_size": 0.01,
        "pixels": 28 * 28,
        "about": "MNIST (RAR/CACR): eps 0.3, IFIA top-k 200, eval k 100, 100 steps of 0.01",
    },
    "fashion-mnist": {
        "methods": ["ig"],
        "attacks": ["ifia-topk"],
        "epsilons": [0.1],
        "attack_params": _ifia_k(100),
        "k": 100,
        "steps": 100,
        "step_size": 0.01,
        "method_params": {"ig": {"steps": 50}},
        "pgd_steps": 100,
        "pgd_step_size": 0.01,
        "pixels": 28 * 28,
        "about": "Fashion-MNIST (RAR/CACR): eps 0.1, IFIA top-k 100, eval k 100, 100 steps of 0.01",
    },
    "gtsrb": {
        "methods": ["ig"],
        "attacks": ["ifia-topk"],
        "epsilons": [8 / 255],
        "attack_params": _ifia_k(100),
        "k": 100,
        "steps": 50,
        "step_size": 1 / 255,
        "method_params": {"ig": {"steps": 50}},
        "pgd_steps": 40,
        "pgd_step_size": 2 / 255,
        "pixels": 32 * 32,
        "about": "GTSRB (RAR/CACR): eps 8/255, IFIA top-k 100, 50 steps of 1/255",
    },
    "flower": {
        "methods": ["ig"],
        "attacks": ["ifia-topk"],
        "epsilons": [8 / 255],
        "attack_params": _ifia_k(1000),
        "k": 1000,
        "steps": 100,
        "step_size": 1 / 255,
        "method_params": {"ig": {"steps": 50}},
        "pgd_steps": 40,
        "pgd_step_size": 2 / 255,
        "pixels": 128 * 128,
        "about": "Flower (RAR/CACR): eps 8/255, IFIA top-k 1000, 100 steps of 1/255",
    },
    # Wang et al. (SSR) Sec. 5: top-k and manipulate over eps 2..16/255 on every method, AUC.
    "cifar10-ssr": {
        "methods": ["sm", "ig", "sg", "ug"],
        "attacks": ["ifia-topk", "manipulate"],
        "epsilons": [2 / 255, 4 / 255, 8 / 255, 16 / 255],
        "attack_params": _ifia_k(20),
        "k": 20,
        "steps": 50,
        "step_size": None,
        "method_params": {"ig": {"steps": 50}},
        "pgd_steps": 20,
        "pgd_step_size": 2 / 255,
        "pixels": 32 * 32,
        "about": "CIFAR-10 (SSR): eps 2,4,8,16/255, top-k 20 and manipulate on SM/IG/SG/UG",
    },
}


def scaled_k(k: int, pixels: int, reference_pixels: int | None) -> int:
    """A preset's k for images of ``pixels`` pixels."""
    if not reference_pixels or pixels == reference_pixels:
        return min(k, pixels)
    return max(1, min(pixels, round(k * pixels / reference_pixels)))
