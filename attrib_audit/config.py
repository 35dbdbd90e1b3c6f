"""The audit's options: :class:`AuditConfig`, its defaults and how a preset fills them in."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from attrib_audit.errors import SettingError
from attrib_audit.models.card import LoadOptions
from attrib_audit.params import merge
from attrib_audit.presets import PRESETS, scaled_k

# options a preset may set; None in AuditConfig means "preset, else this default"
DEFAULTS: dict[str, Any] = {
    "samples": 100,
    "methods": ["sm", "ig"],
    "attacks": ["ifia-topk", "random"],
    "epsilons": [2 / 255, 4 / 255, 8 / 255],
    "steps": 20,
    "step_size": None,  # 2.5 * epsilon / steps (Madry et al.'s rule)
    "k": None,  # an eighth of the pixels
    "pgd_steps": 20,
    "pgd_step_size": None,
}
# the audit's own defaults for entries' settings (under the entries' own, over the presets')
DEFAULT_SETTINGS: dict[str, dict[str, dict[str, Any]]] = {
    "method_params": {"ig": {"steps": 16}},
}
# `attrib-audit audit` with no model: the bundled Fashion-MNIST model on the bundled slice,
# small enough for about a minute on 2 CPU cores (flags still win)
QUICK: dict[str, Any] = {"samples": 32, "epsilons": [4 / 255, 8 / 255]}
FORMATS = ("json", "html", "junit")


def _output(default: Any = None, **kw: Any) -> Any:
    """A field that changes where and how results are written, not what they are (the journal
    fingerprint leaves it out)."""
    if "default_factory" in kw:
        return field(metadata={"output": True}, **kw)
    return field(default=default, metadata={"output": True})


@dataclass
class AuditConfig(LoadOptions):
    """Every audit option. ``None`` means: the preset's value, else the default.

    ``method_params``, ``attack_params`` and ``metric_params`` hold settings of registered
    entries by name (``{"ig": {"steps": 16}}``); each entry's settings class checks them.
    """

    model: str | None = None  # None: the bundled sample model
    data: str | None = None  # None: the bundled data of the bundled model
    samples: int | None = None  # None: 100 (32 in the quick default audit)
    batch_size: int = 64
    max_batch: int | None = None
    methods: list[str] | None = None
    attacks: list[str] | None = None
    metrics: list[str] | None = None  # None: every registered metric
    method_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    attack_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    metric_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    epsilons: list[float] | None = None
    steps: int | None = None
    step_size: float | None = None
    k: int | None = None
    reduce: str = "sum-abs"
    explain: str = "logit"
    beta: float = 10.0
    preset: str | None = None
    transfer: bool = False
    adv_accuracy: bool = False
    pgd_steps: int | None = None
    pgd_step_size: float | None = None
    seed: int = 0
    device: str = "auto"
    deterministic: bool = False
    gallery: int = 6
    # certify the top-k pixels by randomized smoothing (None: no): CertifyParams' settings
    certify: dict[str, Any] | None = None
    require: list[str] = _output(default_factory=list)
    baseline: str | None = _output()
    max_drop: float | None = _output()
    out: str | None = _output("attrib-audit-report")
    formats: list[str] = _output(default_factory=lambda: list(FORMATS))
    resume: bool = _output(False)

    def resolved(self, pixels: int | None) -> AuditConfig:
        """A copy with the preset and the defaults filled in, k scaled to ``pixels``
        (``None``: before the model is loaded; every k is then left as given)."""
        preset: dict[str, Any] = {}
        if self.preset is not None:
            if self.preset not in PRESETS:
                raise SettingError(
                    "preset", f"{self.preset!r} is unknown; valid presets: {', '.join(PRESETS)}"
                )
            preset = PRESETS[self.preset]
        values: dict[str, Any] = {}
        for name, default in DEFAULTS.items():
            given = getattr(self, name)
            values[name] = given if given is not None else preset.get(name, default)
        ref = preset.get("pixels")
        if pixels is not None and self.k is None and "k" in preset:  # the paper's k, scaled
            values["k"] = scaled_k(preset["k"], pixels, ref)
        if pixels is not None and values["k"] is None:
            values["k"] = default_k(pixels)
        for name in ("method_params", "attack_params", "metric_params"):
            from_preset = preset.get(name, {})
            if name == "attack_params" and pixels is not None:  # the papers' attack k, scaled
                from_preset = {
                    a: {s: scaled_k(v, pixels, ref) if s == "k" else v for s, v in p.items()}
                    for a, p in from_preset.items()
                }
            values[name] = merge(DEFAULT_SETTINGS.get(name), from_preset, getattr(self, name))
        return dataclasses.replace(self, **values)


def default_k(pixels: int) -> int:
    """The audit's k when neither the user nor a preset sets it: an eighth of the pixels."""
    return max(1, round(pixels / 8))
