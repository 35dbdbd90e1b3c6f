"""Models: loading with model cards, the smooth surrogate, the bundled sample models."""

from __future__ import annotations

from attrib_audit.models.bundled import sample_model, sample_models_dir
from attrib_audit.models.card import ModelCard
from attrib_audit.models.loading import LoadedModel, Normalized, detect_format, load_model
from attrib_audit.models.surrogate import (
    DEFAULT_BETA,
    Agreement,
    SmoothSurrogate,
    find_relus,
    smooth_surrogate,
    surrogate_agreement,
)

__all__ = [
    "DEFAULT_BETA",
    "Agreement",
    "LoadedModel",
    "ModelCard",
    "Normalized",
    "SmoothSurrogate",
    "detect_format",
    "find_relus",
    "load_model",
    "sample_model",
    "sample_models_dir",
    "smooth_surrogate",
    "surrogate_agreement",
]
