"""Architecture specs: ``torchvision:resnet18(num_classes=10)``, ``pkg.module:factory``,
``path/to/file.py:factory``."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

from torch import nn

from attrib_audit.errors import AttribAuditError

_SPEC = re.compile(r"^\s*(?P<target>[^()]+?)\s*(?:\((?P<args>.*)\))?\s*$", re.S)


def parse_arch(spec: str) -> tuple[str, str, dict[str, Any]]:
    """Split a spec into (module or file, factory name, literal keyword arguments)."""
    m = _SPEC.match(spec)
    if not m or ":" not in m.group("target"):
        raise AttribAuditError(
            f"bad architecture spec {spec!r}; use torchvision:NAME, package.module:factory or "
            "path/to/file.py:factory, optionally with literal keyword arguments, e.g. "
            "'torchvision:resnet18(num_classes=10)'"
        )
    where, _, factory = m.group("target").rpartition(":")
    kwargs: dict[str, Any] = {}
    if m.group("args"):
        try:
            call = ast.parse(f"f({m.group('args')})", mode="eval").body
            assert isinstance(call, ast.Call) and not call.args
            kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
            assert all(k is not None for k in kwargs)
        except (SyntaxError, ValueError, AssertionError):
            raise AttribAuditError(
                f"bad arguments in architecture spec {spec!r}: only keyword arguments with "
                "literal values are allowed, e.g. (num_classes=10)"
            ) from None
    return where.strip(), factory.strip(), kwargs


def _import_file(path: Path):
    name = "attrib_audit_arch_" + re.sub(r"\W", "_", str(path.resolve()))
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise AttribAuditError(f"cannot import architecture file {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise AttribAuditError(f"architecture file {path} failed to import: {exc}") from exc
    return module


def build_arch(spec: str, extra_kwargs: dict[str, Any] | None = None, *, base: Path | None = None):
    """Instantiate the module a spec names; ``extra_kwargs`` (from the card) are added.

    A relative file path is looked up from the working directory, then from ``base`` (the
    checkpoint's folder), so a sidecar card can name a file next to the checkpoint.
    """
    where, factory, kwargs = parse_arch(spec)
    kwargs = {**(extra_kwargs or {}), **kwargs}
    if where == "torchvision":
        import torchvision.models

        module = torchvision.models
    elif where.endswith(".py") or "/" in where or "\\" in where:
        path = Path(where)
        if not path.is_file() and base is not None and (base / path).is_file():
            path = base / path
        if not path.is_file():
            raise AttribAuditError(f"architecture file {where} does not exist")
        module = _import_file(path)
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as exc:
            raise AttribAuditError(
                f"cannot import {where!r} for architecture {spec!r}: {exc}"
            ) from None
    fn = getattr(module, factory, None)
    if not callable(fn):
        raise AttribAuditError(f"{where} has no callable {factory!r} (architecture {spec!r})")
    try:
        model = fn(**kwargs)
    except TypeError as exc:
        raise AttribAuditError(f"architecture {spec!r}: {exc}") from None
    if not isinstance(model, nn.Module):
        raise AttribAuditError(
            f"architecture {spec!r} returned {type(model).__name__}, not a torch.nn.Module"
        )
    return model
