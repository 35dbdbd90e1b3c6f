"""attrib-audit: measure, fix and gate the robustness of gradient attributions.

The names below are imported on first use, so ``import attrib_audit`` (and the command line's
``--help``) does not import torch.
"""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import TYPE_CHECKING, Any

from attrib_audit.errors import AttribAuditError

if TYPE_CHECKING:
    from attrib_audit.api import attribute
    from attrib_audit.models import load_model
    from attrib_audit.pipeline import AuditConfig, audit
    from attrib_audit.report.gate import evaluate_gate as gate
    from attrib_audit.training import FinetuneConfig, finetune

try:
    __version__ = metadata.version("attrib-audit")
except metadata.PackageNotFoundError:  # a source checkout that is not installed
    __version__ = "0.0.0"

_LAZY = {
    "attribute": ("attrib_audit.api", "attribute"),
    "AuditConfig": ("attrib_audit.pipeline", "AuditConfig"),
    "audit": ("attrib_audit.pipeline", "audit"),
    "load_model": ("attrib_audit.models", "load_model"),
    "gate": ("attrib_audit.report.gate", "evaluate_gate"),
    "FinetuneConfig": ("attrib_audit.training", "FinetuneConfig"),
    "finetune": ("attrib_audit.training", "finetune"),
}

__all__ = [
    "AttribAuditError",
    "AuditConfig",
    "FinetuneConfig",
    "__version__",
    "attribute",
    "audit",
    "finetune",
    "gate",
    "load_model",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'attrib_audit' has no attribute {name!r}")
    module, attr = _LAZY[name]
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
