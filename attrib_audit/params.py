"""Typed, frozen settings of a registered method, attack, metric or objective.

Each entry declares its settings once, as a frozen dataclass next to its code::

    @dataclass(frozen=True)
    class IGParams(Params):
        steps: int = setting(50, "points on the path", min=1)

The command line (``--method-param ig.steps=16``), the config file (``[methods.ig]``), the
report's ``config`` and the journal fingerprint all read these classes. Values from text are
converted to the field's type; a wrong type, a value out of range or an unknown name is one
:class:`~attrib_audit.errors.SettingError` carrying the setting's name. No torch here: the
command line reads these without importing it.
"""

from __future__ import annotations

import ast
import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from attrib_audit.errors import SettingError


def setting(
    default: Any,
    help: str,
    *,
    min: float | None = None,
    max: float | None = None,
    above: float | None = None,
    choices: tuple[Any, ...] | None = None,
) -> Any:
    """A dataclass field with its help text and valid range (``min``/``max`` inclusive,
    ``above`` exclusive; ``choices`` the valid strings)."""
    meta = {"help": help, "min": min, "max": max, "above": above, "choices": choices}
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class Params:
    """Base of every settings class; a subclass without fields means "no settings"."""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = _coerce(getattr(self, f.name), hints[f.name], f.name)
            _check_range(value, f)
            object.__setattr__(self, f.name, value)
        self.check()

    def check(self) -> None:
        """Checks across settings (raise :class:`SettingError`); none by default."""

    def as_dict(self) -> dict[str, Any]:
        """The settings as JSON values (the report's ``config``, the journal fingerprint)."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}


@dataclass(frozen=True)
class NoParams(Params):
    """An entry without settings."""


def build(cls: type[Params], values: Mapping[str, Any], *, owner: str) -> Params:
    """``cls`` from ``values`` (text from the command line is parsed as a Python literal);
    an unknown name or a bad value is a :class:`SettingError` naming ``owner.name``."""
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        valid = ", ".join(names) or "none"
        entry = owner.rpartition(".")[2]
        raise SettingError(
            f"{owner}.{unknown[0]}", f"is not a setting of {entry}; its settings: {valid}"
        )
    hints = typing.get_type_hints(cls)
    try:
        return cls(**{k: _from_text(v, hints[k]) for k, v in values.items()})
    except SettingError as exc:
        raise SettingError(f"{owner}.{exc.field}", exc.template, refs=exc.refs) from None


def describe(cls: type[Params]) -> list[tuple[str, str, Any, str]]:
    """(name, type, default, help) per setting, for ``attrib-audit plugins --settings``."""
    hints = typing.get_type_hints(cls)
    return [
        (f.name, _type_name(hints[f.name]), f.default, f.metadata.get("help", ""))
        for f in dataclasses.fields(cls)
    ]


def parse_assignments(items: list[str] | None, *, flag: str) -> dict[str, dict[str, Any]]:
    """``NAME.SETTING=VALUE`` items (``--method-param ig.steps=16``) as ``{NAME: {SETTING:
    text}}``; the values are converted later, by the entry's settings class."""
    out: dict[str, dict[str, Any]] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        name, dot, field = key.strip().rpartition(".")
        if not sep or not dot or not name or not field.isidentifier():
            raise SettingError(
                flag, f"{item!r}: use NAME.SETTING=VALUE, e.g. {flag} ig.steps=16", is_flag=True
            )
        out.setdefault(name, {})[field] = text(value.strip())
    return out


def merge(*layers: Mapping[str, Mapping[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """Per-entry settings, later layers winning setting by setting."""
    out: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for name, values in (layer or {}).items():
            out.setdefault(name, {}).update(values)
    return out


class _Text(str):
    """A value that came as text (the command line): parsed as a literal when possible."""


def text(value: str) -> str:
    """Mark ``value`` as command-line text (``"16"`` then becomes 16 for an int setting)."""
    return _Text(value)


def _from_text(value: Any, hint: Any) -> Any:
    """A command-line value for a setting of type ``hint``: a str setting takes the text as it
    is, a bool one also takes true/false/yes/no/1/0; anything else is read as a Python
    literal (``16``, ``0.5``, ``None``), the text itself where it is none."""
    if not isinstance(value, _Text):
        return value
    raw = str(value)
    allowed = _allowed(hint)
    if bool in allowed and raw.lower() in _BOOLS:
        return _BOOLS[raw.lower()]
    try:
        parsed = ast.literal_eval(raw)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return raw
    others = tuple(t for t in allowed if t is not str and isinstance(t, type))
    if str in allowed and not (others and isinstance(parsed, others)):
        return raw  # a str setting keeps the text: "3" stays "3"
    return parsed


_BOOLS = {"true": True, "false": False, "yes": True, "no": False, "1": True, "0": False}


def _allowed(hint: Any) -> tuple[Any, ...]:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return typing.get_args(hint)
    return (hint,)


def _coerce(value: Any, hint: Any, name: str) -> Any:
    allowed = _allowed(hint)
    if value is None:
        if type(None) in allowed:
            return None
        raise SettingError(name, "must be given (None is not a valid value)")
    for t in allowed:
        if t is bool:
            if isinstance(value, bool):
                return value
        elif t is int:
            if isinstance(value, int) and not isinstance(value, bool):
                if abs(value) >= 2**63:
                    raise SettingError(name, f"is too large, got {value!r:.40}")
                return value
            if isinstance(value, float) and value.is_integer():  # 16.0 from a TOML file
                return int(value)
        elif t is float:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                try:
                    number = float(value)
                except OverflowError:
                    number = math.inf
                if not math.isfinite(number):
                    raise SettingError(name, f"must be a finite number, got {value!r:.40}")
                return number
        elif t is str and isinstance(value, str):
            return str(value)
    want = " or ".join(_type_name(t) for t in allowed if t is not type(None))
    raise SettingError(name, f"must be {want}, got {value!r:.40}")


def _check_range(value: Any, f: dataclasses.Field) -> None:
    m = f.metadata
    if value is None:
        return
    choices = m.get("choices")
    if choices is not None and isinstance(value, str) and value not in choices:  # str choices
        raise SettingError(f.name, f"must be one of {', '.join(map(str, choices))}, got {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if m.get("min") is not None and value < m["min"]:
            raise SettingError(f.name, f"must be >= {m['min']:g}, got {value}")
        if m.get("max") is not None and value > m["max"]:
            raise SettingError(f.name, f"must be <= {m['max']:g}, got {value}")
        if m.get("above") is not None and value <= m["above"]:
            raise SettingError(f.name, f"must be > {m['above']:g}, got {value}")


def _type_name(t: Any) -> str:
    names = [getattr(a, "__name__", str(a)) for a in _allowed(t)]
    return " | ".join("None" if n == "NoneType" else n for n in names)


def _jsonable(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v
