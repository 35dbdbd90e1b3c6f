"""Bring images and tensors to a model card's shape and value range."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from attrib_audit.errors import AttribAuditError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def image_to_tensor(
    img: Image.Image, shape: tuple[int, ...], value_range, *, resize: int | None = None
) -> Tensor:
    """PIL image -> (C, H, W) in ``value_range``: mode by channels, shorter side resized to
    ``resize`` pixels (default, and at least: just enough to cover (H, W)), centre crop to
    (H, W), as torchvision's and timm's evaluation transforms do."""
    c, h, w = shape
    mode = {1: "L", 3: "RGB", 4: "RGBA"}.get(c)
    if mode is None:
        raise AttribAuditError(f"cannot read images for a model with {c} input channels")
    img = img.convert(mode)
    scale = max(h / img.height, w / img.width, (resize or 0) / min(img.height, img.width))
    size = (max(w, round(img.width * scale)), max(h, round(img.height * scale)))
    if size != img.size:
        img = img.resize(size, Image.Resampling.BILINEAR)
    left, top = (img.width - w) // 2, (img.height - h) // 2
    img = img.crop((left, top, left + w, top + h))
    arr = np.asarray(img, dtype=np.float32) / 255.0
    t = torch.from_numpy(arr.reshape(h, w, c).copy()).permute(2, 0, 1)
    lo, hi = value_range
    return t * (hi - lo) + lo


def to_card(
    x: Tensor,
    shape: tuple[int, ...],
    value_range,
    *,
    origin: str,
    raw_range: tuple[float, float] | None = None,
) -> Tensor:
    """A batch of images as float (B, C, H, W) in ``value_range``.

    Integer tensors are read as 0-255 pixels (or ``raw_range``); float tensors must already lie
    in the value range. Spatial sizes are resized (antialiased bilinear) to the card's.
    """
    c, h, w = shape
    if x.dim() == 3 and c == 1:
        x = x.unsqueeze(1)
    if x.dim() == 4 and x.shape[1] != c and x.shape[-1] == c:  # (B, H, W, C)
        x = x.permute(0, 3, 1, 2)
    if x.dim() != 4 or x.shape[1] != c:
        raise AttribAuditError(
            f"{origin}: x has shape {tuple(x.shape)}; expected (N, {c}, H, W) for a model with "
            f"input shape {list(shape)}"
        )
    if x.numel() == 0:
        raise AttribAuditError(f"{origin}: holds no images (x has shape {tuple(x.shape)})")
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).flatten(1).any(1).sum())
        raise AttribAuditError(
            f"{origin}: {bad} image(s) hold NaN or infinite values; remove or repair them"
        )
    lo, hi = value_range
    if not x.is_floating_point() or raw_range is not None:
        rlo, rhi = raw_range or (0.0, 255.0)
        x = (x.float() - rlo) / (rhi - rlo) * (hi - lo) + lo
    else:
        x = x.float()
        if x.numel():
            xmin, xmax = float(x.min()), float(x.max())
            tol = 1e-4 * (hi - lo)
            if xmin < lo - tol or xmax > hi + tol:
                raise AttribAuditError(
                    f"{origin}: values lie in [{xmin:.3g}, {xmax:.3g}], outside the model's "
                    f"value range [{lo:g}, {hi:g}]; rescale the data or pass {{value_range}}",
                    refs=("value_range",),
                )
    if x.shape[-2:] != (h, w):
        x = F.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
        x = x.clamp(lo, hi)
    return x.contiguous()
