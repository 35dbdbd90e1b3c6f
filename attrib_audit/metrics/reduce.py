"""Channel reduction of attribution maps before they are compared (Ghorbani et al.)."""

from __future__ import annotations

from torch import Tensor

from attrib_audit.errors import AttribAuditError

REDUCTIONS: tuple[str, ...] = ("sum-abs", "sum", "l2")


def reduce_map(a: Tensor, how: str = "sum-abs") -> Tensor:
    """Reduce a map over its channel dimension.

    Shape:
        a: (B, C, H, W)
        returns: (B, H, W)
    """
    if a.dim() != 4:
        raise ValueError(f"maps must have shape (B, C, H, W), got {tuple(a.shape)}")
    if how == "sum-abs":
        return a.abs().sum(1)
    if how == "sum":
        return a.sum(1)
    if how == "l2":
        return a.pow(2).sum(1).sqrt()
    raise AttribAuditError(f"reduce must be one of {', '.join(REDUCTIONS)}, got {how!r}")


def flat(a: Tensor, b: Tensor | None = None) -> Tensor:
    """(B, ...) -> (B, N), checking ``b`` has the same shape when given."""
    if b is not None and a.shape != b.shape:
        raise ValueError(f"maps differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.dim() < 2:
        raise ValueError(f"maps must have shape (B, ...), got {tuple(a.shape)}")
    return a.reshape(a.shape[0], -1)


def constant(a: Tensor) -> Tensor:
    """(B,) bool: the map is one value everywhere, so it ranks no pixel above another (a
    Grad-CAM rectified to zero)."""
    f = flat(a)
    return f.amax(1) == f.amin(1)
