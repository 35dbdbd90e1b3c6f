"""The model card: the facts about a model that its weights do not say (README.md, "Models
and model cards")."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from attrib_audit.errors import AttribAuditError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

LAYOUTS = ("NCHW", "NHWC")
# card field -> the CLI flag that sets it, for errors that name what to pass
FLAGS = {
    "arch": "--arch",
    "input_shape": "--input-shape",
    "value_range": "--value-range",
    "mean": "--mean",
    "std": "--std",
    "classes": "--classes",
}


@dataclass(kw_only=True)
class LoadOptions:
    """How to load a model: card fields given as options (they override the sidecar card) and
    the trust flag. The audit's and the fine-tuning's configs extend it."""

    arch: str | None = None
    card: str | None = None
    input_shape: tuple[int, ...] | None = None
    value_range: tuple[float, float] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    classes: tuple[str, ...] | None = None
    trust: bool = False

    def load_options(self) -> dict[str, Any]:
        """These options as ``load_model`` keywords."""
        return {f.name: getattr(self, f.name) for f in fields(LoadOptions)}


@dataclass(frozen=True)
class ModelCard:
    """Architecture, input shape (C, H, W), value range, normalisation and class names.

    ``mean``/``std`` are applied inside the wrapped model, so inputs (and epsilons) are always
    in ``value_range``.
    """

    input_shape: tuple[int, ...] | None = None
    value_range: tuple[float, float] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    classes: tuple[str, ...] | None = None
    arch: str | None = None
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    # the order of the model's own input, NCHW or NHWC (an ONNX graph that starts with a
    # transpose); images and maps are (C, H, W) whatever it is
    layout: str | None = None
    # image files: the shorter side is resized to this many pixels (at least enough to cover
    # the crop), then centre-cropped to input_shape, as torchvision's 232 for a 224 crop
    resize: int | None = None

    def __post_init__(self) -> None:
        _check(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, origin: str = "card") -> ModelCard:
        if not isinstance(data, dict):
            raise AttribAuditError(f"{origin}: a card is a table of fields, got {data!r:.60}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise AttribAuditError(
                f"{origin}: unknown field(s) {', '.join(unknown)}; valid fields: "
                f"{', '.join(sorted(known))}"
            )
        values: dict[str, Any] = {}
        for key, value in data.items():
            if value is None:
                continue
            if key in ("input_shape", "value_range", "mean", "std", "classes"):
                if not isinstance(value, (list, tuple)):
                    raise AttribAuditError(f"{origin}: {key} must be a list, got {value!r}")
                value = tuple(_entry(origin, key, v) for v in value)
            elif key == "resize":
                if not isinstance(value, int) or isinstance(value, bool):
                    raise AttribAuditError(f"{origin}: resize must be an integer, got {value!r}")
            elif key == "arch_kwargs":
                if not isinstance(value, dict):
                    raise AttribAuditError(f"{origin}: arch_kwargs must be a table")
                value = dict(value)
            elif not isinstance(value, str):
                raise AttribAuditError(f"{origin}: {key} must be a string, got {value!r}")
            values[key] = value
        try:
            return cls(**values)
        except AttribAuditError as exc:
            raise AttribAuditError(f"{origin}: {exc}") from None

    @classmethod
    def from_toml(cls, path: str | Path) -> ModelCard:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise AttribAuditError(f"cannot read model card {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise AttribAuditError(f"model card {path} is not valid TOML: {exc}") from None
        return cls.from_dict(data, origin=f"model card {path}")

    def merged(self, **overrides: Any) -> ModelCard:
        """This card with every non-None override applied (flags win over sidecars)."""
        given = {k: v for k, v in overrides.items() if v is not None}
        if not given:
            return self
        base = {k: v for k, v in asdict(self).items() if v not in (None, {})}
        base.update(given)
        return ModelCard.from_dict(base, origin="model card")

    def under(self, other: ModelCard) -> ModelCard:
        """This card with every field ``other`` gives put over it (``other`` wins)."""
        return self.merged(**{k: v for k, v in vars(other).items() if v not in (None, {})})

    def require(self, name: str, why: str = "") -> Any:
        """The field's value, or an error naming the flag that sets it."""
        value = getattr(self, name)
        if value is None:
            flag = FLAGS.get(name, f"--{name.replace('_', '-')}")
            reason = f" {why}" if why else ""
            raise AttribAuditError(
                f"the model card does not say the model's {name.replace('_', ' ')}{reason}; "
                f"pass {flag} or add `{name} = ...` to the sidecar .toml"
            )
        return value

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in d.items()
            if v is not None and v != {}
        }

    def to_toml(self) -> str:
        """The card as TOML, loadable by :meth:`from_toml`."""
        lines = []
        data = self.to_dict()
        table = data.pop("arch_kwargs", None)
        for key, value in data.items():
            lines.append(f"{key} = {_toml_value(value)}")
        if table:
            lines.append("\n[arch_kwargs]")
            for key, value in table.items():
                lines.append(f"{key} = {_toml_value(value)}")
        return "\n".join(lines) + "\n"

    def with_(self, **changes: Any) -> ModelCard:
        return replace(self, **changes)


def _entry(origin: str, key: str, v: Any) -> Any:
    """One entry of a list field, of the field's type (no bools, no silent truncation)."""
    if key == "classes":
        if isinstance(v, (str, int)) and not isinstance(v, bool):
            return str(v)
    elif key == "input_shape":
        if isinstance(v, int) and not isinstance(v, bool):
            return v
    elif isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    raise AttribAuditError(f"{origin}: {key} has a bad entry: {v!r:.60}")


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError(f"cannot write {v} to TOML")
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # JSON string escapes are valid TOML basic strings
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise ValueError(f"cannot write {type(v).__name__} to TOML")


def _check(card: ModelCard) -> None:
    if card.input_shape is not None and (
        len(card.input_shape) != 3 or any(d < 1 for d in card.input_shape)
    ):
        raise AttribAuditError(
            f"input_shape must be C,H,W (three positive sizes, e.g. 1,28,28 or 3,224,224), "
            f"got {','.join(map(str, card.input_shape))}"
        )
    vr = card.value_range
    if vr is not None and (len(vr) != 2 or not vr[0] < vr[1]):
        raise AttribAuditError(
            f"value_range must be lo,hi with lo < hi (e.g. 0,1), got {','.join(map(str, vr))}"
        )
    for name in ("value_range", "mean", "std"):
        v = getattr(card, name)
        if v is not None and not all(math.isfinite(x) for x in v):
            raise AttribAuditError(f"{name} must hold finite numbers, got {list(v)}")
    for name in ("mean", "std"):
        v = getattr(card, name)
        if (
            v is not None
            and card.input_shape is not None
            and len(v) not in (1, card.input_shape[0])
        ):
            raise AttribAuditError(
                f"{name} has {len(v)} values but the input has {card.input_shape[0]} channels"
            )
    if card.std is not None and any(s <= 0 for s in card.std):
        raise AttribAuditError(f"std must be positive, got {list(card.std)}")
    if (card.mean is None) != (card.std is None):
        raise AttribAuditError("mean and std go together: give both or neither")
    if card.resize is not None and card.resize < 1:
        raise AttribAuditError(f"resize must be a positive number of pixels, got {card.resize}")
    if card.layout is not None and card.layout not in LAYOUTS:
        raise AttribAuditError(f"layout must be NCHW or NHWC, got {card.layout!r}")
    if card.classes is not None and len(card.classes) == 0:
        raise AttribAuditError("classes is empty; name one class per model output")


def parse_floats(text: str, what: str) -> tuple[float, ...]:
    """``"0.5,0.5"`` or ``"0,1"`` (fractions like ``8/255`` allowed) -> finite floats."""
    out = []
    for part in text.split(","):
        part = part.strip()
        try:
            if "/" in part:
                num, den = part.split("/", 1)
                value = float(num) / float(den)
            else:
                value = float(part)
        except (ValueError, ZeroDivisionError, OverflowError):
            raise AttribAuditError(f"{what}: {part!r} is not a number (in {text!r})") from None
        if not math.isfinite(value):
            raise AttribAuditError(f"{what}: {part!r} is not a finite number (in {text!r})")
        out.append(value)
    return tuple(out)


def parse_ints(text: str, what: str) -> tuple[int, ...]:
    """``"1,28,28"`` -> ints."""
    try:
        return tuple(int(p) for p in text.split(","))
    except ValueError:
        raise AttribAuditError(
            f"{what}: {text!r} is not a comma-separated list of integers (e.g. 1,28,28)"
        ) from None
