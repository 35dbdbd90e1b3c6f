"""Text for people: long lists (1,000 ImageNet class names) shortened where they are shown."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def brief(value: Any, limit: int = 12, head: int = 6, tail: int = 2) -> str:
    """``value`` as text; a list or tuple longer than ``limit`` as its first ``head`` and last
    ``tail`` items and its length ("tench, goldfish, ..., toilet tissue (1000 in all)")."""
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)) and len(value) > limit:
        items = [str(v) for v in value]
        return f"{', '.join(items[:head])}, ..., {', '.join(items[-tail:])} ({len(items)} in all)"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) if value and isinstance(value[0], str) else str(value)
    return str(value)
