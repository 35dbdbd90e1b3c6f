"""attrib-audit: measure, fix and gate the robustness of gradient attributions."""

from __future__ import annotations

from importlib import metadata

from attrib_audit.api import attribute
from attrib_audit.audit import AuditConfig, audit
from attrib_audit.errors import AttribAuditError
from attrib_audit.models import load_model
from attrib_audit.report.gate import evaluate_gate as gate
from attrib_audit.training import FinetuneConfig, finetune

try:
    __version__ = metadata.version("attrib-audit")
except metadata.PackageNotFoundError:  # a source checkout that is not installed
    __version__ = "0.0.0"

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
