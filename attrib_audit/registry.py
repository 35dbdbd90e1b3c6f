"""One registry per kind of extension: methods, attacks, metrics, objectives and loaders.

Every entry is declared once, where it is written, with its settings class and its facts::

    @METHODS.declare("ig", params=IGParams, title="Integrated Gradients")
    def integrated_gradients(model, x, target, *, steps=50, ...): ...

Built-ins are found by importing their package (a new file is a new entry; nothing else is
edited). Plugins declare their callables the same way and publish them as entry points of the
kind's group (``attrib_audit.methods`` ...); they are loaded lazily, on the first lookup, and
one that fails to import is recorded in ``Registry.failures`` and reported by
``attrib-audit plugins`` instead of breaking every command.

This module imports neither torch nor the entries' modules at import time.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import pkgutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Literal

from attrib_audit.errors import RegistryError
from attrib_audit.params import NoParams, Params

BUILTIN_SOURCE = "attrib-audit"


@dataclass(frozen=True)
class MethodFacts:
    """``title``: the name shown in reports. ``create_graph``: the map can be differentiated
    with respect to x (what the attacks need). ``stochastic``: the map depends on a seed
    (noise); the audit gives clean and perturbed maps the same seed, and the contract checks
    that two seeds differ."""

    title: str = ""
    create_graph: bool = True
    stochastic: bool = False


@dataclass(frozen=True)
class AttackFacts:
    """``keeps_prediction``: an attack on attributions (it returns x where no point keeping
    the prediction was found); PGD, which changes predictions, is not one. ``iterative``: it
    needs ``steps >= 1`` (zero steps would return x and prove nothing)."""

    keeps_prediction: bool = True
    iterative: bool = True


@dataclass(frozen=True)
class MetricFacts:
    """``on``: which maps it compares, reduced (B, H, W) or raw (B, C, H, W).
    ``higher_is_robust``: which way is better (the gate and the worst-case summary use it).
    ``inputs``: it also compares the inputs; it is called with ``x=`` and ``x_adv=``
    (B, C, H, W). ``over_draws``: how the values of an attack's several draws per sample (the
    ``random`` attack's) aggregate, ``"mean"`` or ``"max"``."""

    on: Literal["reduced", "raw"] = "reduced"
    higher_is_robust: bool = True
    inputs: bool = False
    over_draws: Literal["mean", "max"] = "mean"


@dataclass(frozen=True)
class ObjectiveFacts:
    """No facts yet: an objective's settings say everything (``epsilon`` for the robust ones)."""


@dataclass(frozen=True)
class LoaderFacts:
    """``suffixes``: file extensions this loader claims (a plugin's; built-in formats are
    recognised by their content, not their name)."""

    suffixes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Entry:
    """A registered callable with its settings class and its facts."""

    name: str
    obj: Any
    source: str = BUILTIN_SOURCE
    version: str = ""
    params: type[Params] = NoParams
    facts: Any = None

    @property
    def defaults(self) -> dict[str, Any]:
        """The settings' defaults, as JSON values."""
        return self.params().as_dict()


@dataclass(frozen=True)
class Failure:
    """An entry point that could not be loaded."""

    name: str
    source: str
    error: str


ENTRY_ATTRIBUTE = "__attrib_audit_entry__"
_FACTS = {
    "method": MethodFacts,
    "attack": AttackFacts,
    "metric": MetricFacts,
    "objective": ObjectiveFacts,
    "loader": LoaderFacts,
}


class Registry:
    """Names to callables for one kind. ``package``: where the built-ins are written (every
    module of it is imported on the first lookup)."""

    def __init__(
        self, kind: str, group: str, facts: type | None = None, package: str | None = None
    ) -> None:
        self.kind, self.group, self.package = kind, group, package
        self.facts_type = facts or _FACTS.get(kind, ObjectiveFacts)
        self._entries: dict[str, Entry] = {}
        self._declared: dict[str, Entry] = {}
        self.failures: list[Failure] = []
        self._loaded = False

    def declare(
        self, name: str, *, params: type[Params] = NoParams, **facts: Any
    ) -> Callable[[Any], Any]:
        """Decorator: ``obj`` is the entry ``name`` with settings ``params`` and ``facts``.

        Declared in attrib-audit's own modules, it is a built-in; in a plugin, the entry point
        naming ``obj`` registers it (under the entry point's name)."""
        module = sys._getframe(1).f_globals.get("__name__", "")
        entry = Entry(name, None, params=_checked_params(params), facts=self._facts(name, facts))

        def decorate(obj: Any) -> Any:
            declared = dataclasses.replace(entry, obj=obj)
            setattr(obj, ENTRY_ATTRIBUTE, declared)
            if module == "attrib_audit" or module.startswith("attrib_audit."):
                if name in self._declared and self._declared[name].obj is not obj:
                    raise RegistryError(f"built-in {self.kind} {name!r} is declared twice")
                self._declared[name] = declared
            return obj

        return decorate

    def register(
        self,
        name: str,
        obj: Any,
        *,
        source: str = BUILTIN_SOURCE,
        version: str = "",
        params: type[Params] | None = None,
        **facts: Any,
    ) -> Any:
        """Add ``obj`` under ``name``; a name claimed twice is an error naming both sources.
        ``obj`` declared with :meth:`declare` brings its settings and facts."""
        if name in self._entries:
            other = self._entries[name].source
            raise RegistryError(
                f"{self.kind} name {name!r} is claimed twice: by {other} and by {source}; "
                "uninstall one of the two packages or rename the entry point"
            )
        declared = getattr(obj, ENTRY_ATTRIBUTE, None)
        if isinstance(declared, Entry):  # what is given here overrides the declaration
            params = params or declared.params
            known = dataclasses.asdict(declared.facts) if declared.facts is not None else {}
            fact_values = self._facts(name, {**known, **facts})
        else:
            fact_values = self._facts(name, facts)
        if not version and source == BUILTIN_SOURCE:
            version = _version(BUILTIN_SOURCE)
        self._entries[name] = Entry(
            name, obj, source, version, _checked_params(params or NoParams), fact_values
        )
        return obj

    def _facts(self, name: str, facts: dict[str, Any]) -> Any:
        try:
            return self.facts_type(**facts)
        except TypeError:
            valid = ", ".join(f.name for f in dataclasses.fields(self.facts_type)) or "none"
            raise RegistryError(
                f"{self.kind} {name!r}: unknown fact(s) {', '.join(sorted(facts))}; "
                f"a {self.kind} has: {valid}"
            ) from None

    def reset(self) -> None:
        """Forget every registered entry; the next lookup registers the built-ins and loads
        the entry points again (after installing a plugin in a running process, for instance)."""
        self._entries.clear()
        self.failures.clear()
        self._loaded = False

    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if self.package is not None:
            _import_all(self.package)
            for name, entry in sorted(self._declared.items()):
                self.register(name, entry.obj, version=entry.version)
        self.load_entry_points()

    def load_entry_points(self) -> None:
        """Load every entry point of this registry's group: each names a declared callable
        (or a plain one, which then has no settings)."""
        for ep in metadata.entry_points(group=self.group):
            dist = ep.dist.name if ep.dist is not None else ep.value.split(":")[0]
            version = ep.dist.version if ep.dist is not None else ""
            try:
                obj = ep.load()
            except Exception as exc:  # a broken plugin must not break every command
                self.failures.append(Failure(ep.name, dist, f"{type(exc).__name__}: {exc}"))
                continue
            self.register(ep.name, obj, source=dist, version=version)

    def get(self, name: str) -> Entry:
        self._ensure_loaded()
        try:
            return self._entries[name]
        except KeyError:
            raise RegistryError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        names = self.names()
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown {self.kind} {name!r}{hint}; valid names: {', '.join(names)}"

    def names(self) -> list[str]:
        self._ensure_loaded()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._ensure_loaded()
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        self._ensure_loaded()
        return iter([self._entries[n] for n in sorted(self._entries)])

    def __len__(self) -> int:
        self._ensure_loaded()
        return len(self._entries)


def _checked_params(params: type[Params]) -> type[Params]:
    if not (isinstance(params, type) and issubclass(params, Params)):
        raise RegistryError(f"settings must be a Params dataclass, got {params!r}")
    return params


def _import_all(name: str) -> None:
    """Import ``name`` and, for a package, every module in it (their declarations run)."""
    module = importlib.import_module(name)
    for info in pkgutil.iter_modules(getattr(module, "__path__", [])):
        importlib.import_module(f"{name}.{info.name}")


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return ""


METHODS = Registry("method", "attrib_audit.methods", package="attrib_audit.attributions")
ATTACKS = Registry("attack", "attrib_audit.attacks", package="attrib_audit.attacks")
METRICS = Registry("metric", "attrib_audit.metrics", package="attrib_audit.metrics")
OBJECTIVES = Registry("objective", "attrib_audit.objectives", package="attrib_audit.objectives")
LOADERS = Registry("loader", "attrib_audit.loaders", package="attrib_audit.models.loading")

REGISTRIES = {r.kind: r for r in (METHODS, ATTACKS, METRICS, OBJECTIVES, LOADERS)}
# the config file's table and the command line's flag for each kind's settings
SECTIONS = {"method": "methods", "attack": "attacks", "metric": "metrics"}
