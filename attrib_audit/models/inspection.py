"""What ``attrib-audit inspect`` reports about a model."""

from __future__ import annotations

import warnings
from collections import Counter
from typing import Any

import torch
from torch import Tensor, nn

from attrib_audit.models.loading import LoadedModel
from attrib_audit.models.surrogate import find_relus, smooth_surrogate, surrogate_agreement

_ACTIVATIONS = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.Hardtanh,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Sigmoid,
    nn.Tanh,
    nn.Softplus,
    nn.PReLU,
    nn.Mish,
    nn.Hardswish,
)


def inspect_model(
    loaded: LoadedModel,
    *,
    beta: float,
    x: Tensor | None = None,
    probe_size: int = 32,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """Format, hash, card, parameters, activations and surrogate agreement of a model.

    Agreement is measured on ``x`` when given, else on uniform noise in the value range (a
    weaker check: say which in the result).
    """
    module = loaded.module
    if x is None:
        g = torch.Generator().manual_seed(seed)
        lo, hi = loaded.card.value_range
        x = torch.rand((probe_size, *loaded.card.input_shape), generator=g) * (hi - lo) + lo
        on = "uniform noise"
    else:
        on = "data"
    module.to(device)
    x = x.to(device)
    acts = Counter(type(m).__name__ for m in module.modules() if isinstance(m, _ACTIVATIONS))
    relus = find_relus(module, x[:1])
    functional = [r for r in relus if " in forward of " in r]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unreplaced ReLUs are reported below instead
        surrogate = smooth_surrogate(module, beta)
    agreement = surrogate_agreement(module, surrogate, x)
    return {
        "path": str(loaded.path),
        "format": loaded.format,
        "sha256": loaded.sha256,
        "card": loaded.card.to_dict(),
        "parameters": sum(p.numel() for p in module.parameters()),
        "activation_modules": dict(acts),
        "functional_relu_calls": functional,
        "onnx_conversion_max_abs_error": loaded.conversion_error,
        "onnx_notes": list(loaded.onnx_notes),
        "surrogate": {
            "beta": beta,
            "replaced": len(surrogate.replaced),
            "unreplaced": surrogate.unreplaced,
            "remaining_relus": find_relus(surrogate, x[:1]),
            "piecewise": surrogate.piecewise,
            "prediction_agreement": agreement.prediction_agreement,
            "map_cosine": agreement.map_cosine,
            "measured_on": f"{agreement.n} samples of {on}",
        },
    }
