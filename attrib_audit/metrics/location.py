"""Center-of-mass dislocation: how far (in pixels) a map's center of mass moves."""

from __future__ import annotations

import torch
from torch import Tensor

from attrib_audit.registry import METRICS


def center_of_mass(a: Tensor) -> Tensor:
    """Center of mass of each map's absolute values, in pixel coordinates (row, col).

    An all-zero map has no mass; its center is taken as the middle of the image.

    Shape:
        a: (B, H, W)
        returns: (B, 2)
    """
    if a.dim() != 3:
        raise ValueError(f"maps must have shape (B, H, W), got {tuple(a.shape)}")
    _, h, w = a.shape
    m = a.abs()
    total = m.sum((1, 2))
    rows = torch.arange(h, dtype=m.dtype, device=m.device)
    cols = torch.arange(w, dtype=m.dtype, device=m.device)
    r = (m.sum(2) * rows).sum(1)
    c = (m.sum(1) * cols).sum(1)
    middle = torch.tensor([(h - 1) / 2, (w - 1) / 2], dtype=m.dtype, device=m.device)
    com = torch.stack([r, c], 1) / total.clamp_min(torch.finfo(m.dtype).tiny)[:, None]
    return torch.where((total > 0)[:, None], com, middle)


@METRICS.declare("com_dislocation", higher_is_robust=False)
def com_dislocation(a: Tensor, b: Tensor) -> Tensor:
    """Euclidean distance between the centers of mass of two maps, in pixels.

    Shape:
        a, b: (B, H, W)
        returns: (B,)
    """
    if a.shape != b.shape:
        raise ValueError(f"maps differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    return (center_of_mass(a) - center_of_mass(b)).norm(dim=1)
