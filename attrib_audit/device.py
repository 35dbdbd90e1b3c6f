"""``--device auto|cpu|cuda[:N]``."""

from __future__ import annotations

import torch

from attrib_audit.errors import AttribAuditError


def resolve_device(spec: str = "auto") -> torch.device:
    """The torch device a spec names; a CUDA spec on a machine without CUDA is a clear error."""
    spec = spec.strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise AttribAuditError(
                f"--device {spec}: no CUDA device is available on this machine; "
                "use --device cpu (or auto)"
            )
        try:
            device = torch.device(spec)
        except RuntimeError:
            raise AttribAuditError(f"--device {spec!r} is not a valid device") from None
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise AttribAuditError(
                f"--device {spec}: this machine has {count} CUDA device(s) (0..{count - 1})"
            )
        return device
    raise AttribAuditError(f"--device must be auto, cpu, cuda or cuda:N, got {spec!r}")
