"""The Python API's one-call entry points."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from attrib_audit.errors import SettingError
from attrib_audit.models.loading import LoadedModel

# what the audit passes to every method that takes it (and drops for one that does not)
CONTEXT = ("seed", "explain", "max_batch")
# keywords for objects the Python API may hand a method that takes them (never text)
OBJECTS = {"noise": Tensor, "generator": torch.Generator, "baseline": Tensor}


def method_kwargs(
    name: str, value_range: tuple[float, float] | None = None, **overrides: Any
) -> tuple[Any, dict[str, Any]]:
    """The registered method ``name`` and its keyword arguments: its settings (defaults, then
    ``overrides``, checked by its settings class), ``value_range`` where the method takes one,
    the context it takes (``seed``, ``explain``, ``max_batch``) and the objects it takes
    (a ``noise`` or ``baseline`` tensor, a ``generator``). None values are ignored; anything
    else is an error naming the method's settings."""
    from attrib_audit.params import build
    from attrib_audit.plan import Bound, accepted
    from attrib_audit.registry import METHODS

    entry = METHODS.get(name)
    given = {k: v for k, v in overrides.items() if v is not None}
    names = [f.name for f in dataclasses.fields(entry.params)]
    objects = {k: v for k, v in given.items() if k in OBJECTS and isinstance(v, OBJECTS[k])}
    plain = {k: v for k, v in given.items() if k in names and k not in objects}
    rest = {k: v for k, v in given.items() if k not in plain and k not in objects}
    unknown = sorted(k for k in rest if k not in CONTEXT)
    if unknown:
        raise SettingError(
            f"method_params.{name}.{unknown[0]}",
            f"is not a setting of {name}; its settings: {', '.join(names) or 'none'}",
        )
    params = build(entry.params, plain, owner=f"method_params.{name}")
    if value_range is not None:
        rest["value_range"] = tuple(value_range)
    kwargs = Bound(entry, params).kwargs(**rest)  # context the method does not take is dropped
    kwargs.update(accepted(entry.obj, objects))  # a tensor baseline wins over the setting
    return entry.obj, kwargs


def attribute(
    model: LoadedModel | nn.Module,
    x: Tensor,
    target: Tensor | None = None,
    *,
    method: str = "ig",
    params: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Tensor:
    """Attribution maps of ``model`` for ``x`` with the registered method ``method``.

    ``target`` defaults to the model's prediction. The method's settings come as keyword
    arguments (``steps=32``) or in ``params``, which also takes names this function uses
    itself (IG's quadrature: ``params={"method": "gausslegendre"}``). For a
    :class:`LoadedModel` the card's value range is passed to the methods that use it.

    Shape:
        x: (B, C, H, W)
        target: (B,) or None
        returns: (B, C, H, W)
    """
    value_range = None
    if isinstance(model, LoadedModel):
        value_range = model.card.value_range
        model = model.module
    if target is None:
        with torch.no_grad():
            target = model(x).argmax(1)
    fn, settings = method_kwargs(method, value_range, **{**(params or {}), **kwargs})
    return fn(model, x, target, **settings)


def attribute_to_dir(
    model: LoadedModel,
    data,
    out,
    *,
    method: str = "ig",
    reduce: str = "sum-abs",
    batch_size: int = 32,
    params: dict[str, Any] | None = None,
    device: torch.device | str = "cpu",
) -> list[dict[str, Any]]:
    """Attribute every sample of ``data`` and write ``NNNN.png`` (heatmap over the image) and
    ``NNNN.npy`` (the raw map, (C, H, W)) per sample into ``out``; returns one row per sample.
    ``params`` are the method's settings, as in :func:`attribute`.

    Every file is written atomically.
    """
    from attrib_audit.io import OutputDir

    with OutputDir(out):
        return _attribute_files(model, data, Path(out), method, reduce, batch_size, params, device)


def _attribute_files(model, data, out: Path, method, reduce, batch_size, params, device):
    from attrib_audit.device import module_on
    from attrib_audit.io import atomic_write_bytes
    from attrib_audit.metrics import reduce_map
    from attrib_audit.render import heatmap_png

    rows: list[dict[str, Any]] = []
    index = 0
    module = module_on(model.module, device)  # a copy when it must move: the caller's stays put
    on_device = dataclasses.replace(model, module=module)
    for x, y in data.batches(batch_size):
        x = x.to(device)
        with torch.no_grad():
            pred = module(x).argmax(1)
        maps = attribute(on_device, x, pred, method=method, params=params)
        reduced = reduce_map(maps, reduce)
        for i in range(x.shape[0]):
            stem = f"{index:04d}"
            atomic_write_bytes(out / f"{stem}.npy", _npy_bytes(maps[i]))
            png = heatmap_png(x[i].cpu(), reduced[i].cpu(), model.card.value_range)
            atomic_write_bytes(out / f"{stem}.png", png)
            classes = model.card.classes
            rows.append(
                {
                    "index": index,
                    "label": int(y[i]) if int(y[i]) >= 0 else None,
                    "prediction": int(pred[i]),
                    "class": classes[int(pred[i])] if classes else str(int(pred[i])),
                    "png": str(out / f"{stem}.png"),
                    "npy": str(out / f"{stem}.npy"),
                }
            )
            index += 1
    return rows


def _npy_bytes(t: Tensor) -> bytes:
    buf = io.BytesIO()
    np.save(buf, t.detach().cpu().numpy())
    return buf.getvalue()
