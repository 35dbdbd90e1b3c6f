"""The audit's typed stages' values: a :class:`Plan` (what runs, on what) and a :class:`Grid`
(what it found), which :mod:`attrib_audit.pipeline` makes and the report reads."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from attrib_audit.params import Params
from attrib_audit.registry import Entry

if TYPE_CHECKING:
    import torch

    from attrib_audit.config import AuditConfig


def accepted(fn: Callable, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Those of ``kwargs`` that ``fn`` takes (all of them when it takes ``**kwargs``)."""
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return kwargs
    return {k: v for k, v in kwargs.items() if k in params}


@dataclass(frozen=True)
class Bound:
    """A registered entry with its checked settings."""

    entry: Entry
    params: Params

    @property
    def name(self) -> str:
        return self.entry.name

    def kwargs(self, **context: Any) -> dict[str, Any]:
        """The settings, then those of ``context`` the callable takes."""
        settings = {f.name: getattr(self.params, f.name) for f in dataclasses.fields(self.params)}
        return {**accepted(self.entry.obj, context), **settings}

    def bind(self, **context: Any) -> Callable[..., Any]:
        return partial(self.entry.obj, **self.kwargs(**context))


@dataclass(frozen=True)
class Plan:
    """What runs, on what: the resolved config, the bound entries, the loaded model (on the
    device), its surrogate, the data and the baseline report."""

    config: AuditConfig
    methods: tuple[Bound, ...]
    attacks: tuple[Bound, ...]
    metrics: tuple[Bound, ...]
    loaded: Any  # LoadedModel
    surrogate: torch.nn.Module
    data: Any  # Data
    baseline: dict[str, Any] | None
    device: torch.device
    certify: Any = None  # CertifyParams, when the audit certifies
    rank: int = 0  # this process, of ``world`` under torchrun (each audits every world-th batch)
    world: int = 1

    def method(self, name: str) -> Bound:
        return next(m for m in self.methods if m.name == name)

    def settings(self) -> dict[str, Any]:
        """What the results depend on, as JSON values: the config's options (less those that
        only say where and how results are written) with each kind's entries and their checked
        settings. A resumed audit must match it; the report's ``config`` shows the same."""
        import json

        entries = self.entries_config()
        values = {
            f.name: entries.get(f.name, getattr(self.config, f.name))
            for f in dataclasses.fields(self.config)
            if not f.metadata.get("output") and not f.name.endswith("_params")
        }
        values["certify"] = self.certify.as_dict() if self.certify is not None else None
        return json.loads(json.dumps(values, default=str))

    def entries_config(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Each kind's entries with their settings (the report's ``config``)."""
        return {
            kind: {b.name: b.params.as_dict() for b in getattr(self, kind)}
            for kind in ("methods", "attacks", "metrics")
        }


@dataclass
class Grid:
    """Everything the attacks and the measurements found."""

    rows: list[dict[str, Any]]
    gallery: dict[str, list[dict[str, Any]]]
    n_samples: int
    n_correct: int
    n_nonfinite_logits: int
    prediction_agreement: float | None
    map_cosine: float | None
    onnx_checked: int
    onnx_disagreements: int
    adv_accuracy: dict[float, float] | None
    # per method, per-sample certificate values (certify.summary's), in sample order
    certification: dict[str, dict[str, list]] | None = None
    execution: dict[str, Any] = field(default_factory=lambda: {"processes": 1, "devices": []})
