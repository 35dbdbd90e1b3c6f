"""Small arrays inside JSON: float16 ``.npy`` bytes in base64 (the report's gallery)."""

from __future__ import annotations

import base64
import io

import numpy as np


def encode_array(a) -> str:
    """A tensor or array as base64 float16 ``.npy`` bytes."""
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    buf = io.BytesIO()
    np.save(buf, np.asarray(a).astype(np.float16))
    return base64.b64encode(buf.getvalue()).decode()


def decode_array(s: str) -> np.ndarray:
    """The array :func:`encode_array` wrote, as float32."""
    return np.load(io.BytesIO(base64.b64decode(s))).astype(np.float32)
