"""Architecture specs: ``torchvision:resnet18(num_classes=10)``, ``pkg.module:factory``,
``path/to/file.py:factory``.

A spec names code to run. The user's own spec (``--arch``, or ``arch`` in their ``--config``) is
their choice; a spec that comes with a checkpoint (its sidecar card, a card embedded in the file)
may name only a *known* architecture, a torchvision classification model or a bundled one, unless
the user trusts the checkpoint (``docs/SECURITY.md``).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

from torch import nn

from attrib_audit.errors import AttribAuditError, UntrustedCodeError

_SPEC = re.compile(r"^\s*(?P<target>[^()]+?)\s*(?:\((?P<args>.*)\))?\s*$", re.S)
ZOO_MODULE = "attrib_audit.models.zoo"
TRUST_FLAG = "--trust-checkpoint"


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
    where, factory = where.strip(), factory.strip()
    if not where or not factory.isidentifier():
        raise AttribAuditError(
            f"bad architecture spec {spec!r}: {factory!r} is not a factory name; use "
            "WHERE:FACTORY, e.g. torchvision:resnet18"
        )
    kwargs: dict[str, Any] = {}
    if m.group("args"):
        try:
            call = ast.parse(f"f({m.group('args')})", mode="eval").body
            if not isinstance(call, ast.Call) or call.args:
                raise ValueError
            kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
            if any(k is None for k in kwargs):
                raise ValueError
        except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
            raise AttribAuditError(
                f"bad arguments in architecture spec {spec!r}: only keyword arguments with "
                "literal values are allowed, e.g. (num_classes=10)"
            ) from None
    return where, factory, kwargs


def known_architectures() -> dict[str, tuple[str, ...]]:
    """The factories a checkpoint's card may name without the trust flag: torchvision's
    classification models and the bundled models' architectures."""
    import torchvision.models

    from attrib_audit.models import zoo

    return {
        "torchvision": tuple(torchvision.models.list_models(module=torchvision.models)),
        ZOO_MODULE: zoo.FACTORIES,
    }


def is_known(spec: str) -> bool:
    """Whether ``spec`` names a known architecture (it is parsed, never imported)."""
    where, factory, _ = parse_arch(spec)
    return factory in known_architectures().get(where, ())


def check_card_arch(spec: str, origin: str) -> None:
    """Refuse a spec from ``origin`` (a card that came with a checkpoint) that names code."""
    if not is_known(spec):
        raise UntrustedCodeError(
            f"{origin} names the architecture {spec!r}, which is not a torchvision or bundled "
            f"model: it would run code that came with the checkpoint. Pass {TRUST_FLAG} if you "
            "trust its source, or --arch to choose the architecture yourself"
        )


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


def _weights_args(kwargs: dict[str, Any]) -> list[str]:
    return [k for k in kwargs if "weights" in k or "pretrained" in k]


def build_arch(spec: str, extra_kwargs: dict[str, Any] | None = None, *, base: Path | None = None):
    """Instantiate the module a spec names; ``extra_kwargs`` (from the card) are added.

    A relative file path is looked up from the working directory, then from ``base`` (the
    checkpoint's folder), so a sidecar card can name a file next to the checkpoint. Whether the
    spec may run at all is the caller's decision (:func:`check_card_arch`).
    """
    where, factory, kwargs = parse_arch(spec)
    kwargs = {**(extra_kwargs or {}), **kwargs}
    if where == "torchvision":
        import torchvision.models

        module = torchvision.models
        if factory not in known_architectures()["torchvision"]:
            raise AttribAuditError(
                f"torchvision has no classification model {factory!r}; see "
                "torchvision.models.list_models()"
            )
        if _weights_args(kwargs):
            raise AttribAuditError(
                f"architecture {spec!r}: drop {', '.join(_weights_args(kwargs))}; the weights "
                "come from the checkpoint file, nothing is downloaded"
            )
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
        except Exception as exc:
            raise AttribAuditError(
                f"cannot import {where!r} for architecture {spec!r}: {exc}"
            ) from None
    fn = getattr(module, factory, None)
    if not callable(fn):
        raise AttribAuditError(f"{where} has no callable {factory!r} (architecture {spec!r})")
    try:
        model = fn(**kwargs)
    except Exception as exc:  # the factory is the user's code: its failure is their input's
        raise AttribAuditError(
            f"architecture {spec!r} failed to build: {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(model, nn.Module):
        raise AttribAuditError(
            f"architecture {spec!r} returned {type(model).__name__}, not a torch.nn.Module"
        )
    return model
