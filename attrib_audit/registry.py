"""One registry per kind of extension, filled by built-ins and by entry points.

Built-ins register through the same path as third-party plugins. Entry points of a group are
loaded lazily, on the first lookup; a plugin that fails to import is recorded in
``Registry.failures`` and reported by ``attrib-audit plugins`` instead of breaking every command.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from attrib_audit.errors import RegistryError

BUILTIN_SOURCE = "attrib-audit"


@dataclass(frozen=True)
class Entry:
    """A registered callable with its defaults and descriptive facts."""

    name: str
    obj: Any
    source: str = BUILTIN_SOURCE
    version: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Failure:
    """An entry point that could not be loaded."""

    name: str
    source: str
    error: str


class Registry:
    """Names to callables for one kind (methods, attacks, metrics, objectives, loaders)."""

    def __init__(self, kind: str, group: str) -> None:
        self.kind = kind
        self.group = group
        self._entries: dict[str, Entry] = {}
        self.failures: list[Failure] = []
        self._loaded = False
        self._builtins: Callable[[], None] | None = None

    def set_builtins(self, loader: Callable[[], None]) -> None:
        """Register built-ins lazily (avoids import cycles between the registry and its kinds)."""
        self._builtins = loader

    def reset(self) -> None:
        """Forget every entry; the next lookup registers the built-ins and loads the entry
        points again (after installing a plugin in a running process, for instance)."""
        self._entries.clear()
        self.failures.clear()
        self._loaded = False

    def register(
        self,
        name: str,
        obj: Any,
        *,
        source: str = BUILTIN_SOURCE,
        version: str = "",
        defaults: dict[str, Any] | None = None,
        **meta: Any,
    ) -> Any:
        """Add ``obj`` under ``name``; a name claimed twice is an error naming both sources."""
        if name in self._entries:
            other = self._entries[name].source
            raise RegistryError(
                f"{self.kind} name {name!r} is claimed twice: by {other} and by {source}; "
                "uninstall one of the two packages or rename the entry point"
            )
        if not version and source == BUILTIN_SOURCE:
            version = _version(BUILTIN_SOURCE)
        self._entries[name] = Entry(name, obj, source, version, dict(defaults or {}), meta)
        return obj

    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if self._builtins is not None:
            self._builtins()
        self.load_entry_points()

    def load_entry_points(self) -> None:
        """Load every entry point of this registry's group.

        An entry point may name a callable (registered under the entry point's name) or an
        ``Entry`` (registered with its defaults and facts).
        """
        for ep in metadata.entry_points(group=self.group):
            dist = ep.dist.name if ep.dist is not None else ep.value.split(":")[0]
            version = ep.dist.version if ep.dist is not None else ""
            try:
                obj = ep.load()
            except Exception as exc:  # a broken plugin must not break every command
                self.failures.append(Failure(ep.name, dist, f"{type(exc).__name__}: {exc}"))
                continue
            if isinstance(obj, Entry):
                self.register(
                    ep.name,
                    obj.obj,
                    source=dist,
                    version=version,
                    defaults=obj.defaults,
                    **obj.meta,
                )
            else:
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


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return ""


METHODS = Registry("method", "attrib_audit.methods")
ATTACKS = Registry("attack", "attrib_audit.attacks")
METRICS = Registry("metric", "attrib_audit.metrics")
OBJECTIVES = Registry("objective", "attrib_audit.objectives")
LOADERS = Registry("loader", "attrib_audit.loaders")

REGISTRIES = {r.kind: r for r in (METHODS, ATTACKS, METRICS, OBJECTIVES, LOADERS)}


def _register_builtin_methods() -> None:
    from attrib_audit import attributions

    attributions.register_builtins(METHODS)


def _register_builtin_metrics() -> None:
    from attrib_audit import metrics

    metrics.register_builtins(METRICS)


def _register_builtin_attacks() -> None:
    from attrib_audit import attacks

    attacks.register_builtins(ATTACKS)


def _register_builtin_objectives() -> None:
    from attrib_audit import objectives

    objectives.register_builtins(OBJECTIVES)


def _register_builtin_loaders() -> None:
    from attrib_audit.models import loading

    loading.register_builtins(LOADERS)


METHODS.set_builtins(_register_builtin_methods)
METRICS.set_builtins(_register_builtin_metrics)
ATTACKS.set_builtins(_register_builtin_attacks)
OBJECTIVES.set_builtins(_register_builtin_objectives)
LOADERS.set_builtins(_register_builtin_loaders)
