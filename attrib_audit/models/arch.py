"""Architecture specs: ``torchvision:resnet18(num_classes=10)``, ``timm:convnext_tiny``,
``pkg.module:factory``, ``path/to/file.py:factory``.

A zoo spec may name the weights its checkpoint holds, ``torchvision:resnet50@IMAGENET1K_V2`` or
``timm:resnet50@a1_in1k``: the model card (input size, normalisation, class names) then comes
from the zoo's metadata of those weights (:func:`zoo_card`). The weights themselves always come
from the checkpoint file; nothing is downloaded.

A spec names code to run. The user's own spec (``--arch``, or ``arch`` in their ``--config``) is
their choice; a spec that comes with a checkpoint (its sidecar card, a card embedded in the file)
may name only a *known* architecture, a torchvision classification model or a bundled one, unless
the user trusts the checkpoint (``docs/SECURITY.md``).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import math
import re
import sys
from pathlib import Path
from typing import Any, NamedTuple

from torch import nn

from attrib_audit.errors import AttribAuditError, UntrustedCodeError

_SPEC = re.compile(r"^\s*(?P<target>[^()]+?)\s*(?:\((?P<args>.*)\))?\s*$", re.S)
ZOO_MODULE = "attrib_audit.models.zoo"
TRUST_FLAG = "--trust-checkpoint"
ZOOS = ("torchvision", "timm")  # libraries whose models a spec names by NAME, with @WEIGHTS
TIMM_MISSING = "timm is not installed; install the extra: pip install 'attrib-audit[timm]'"


class ArchSpec(NamedTuple):
    """A parsed spec: where the factory lives, its name, literal keyword arguments, and (zoo
    specs only) the weights whose metadata gives the card."""

    where: str
    factory: str
    kwargs: dict[str, Any]
    weights: str | None = None


def parse_arch(spec: str) -> ArchSpec:
    """Split a spec into (module or file, factory name, literal keyword arguments, weights)."""
    m = _SPEC.match(spec)
    if not m or ":" not in m.group("target"):
        raise AttribAuditError(
            f"bad architecture spec {spec!r}; use torchvision:NAME, package.module:factory or "
            "path/to/file.py:factory, optionally with literal keyword arguments, e.g. "
            "'torchvision:resnet18(num_classes=10)'"
        )
    where, _, factory = m.group("target").rpartition(":")
    factory, at, weights = factory.partition("@")
    where, factory, weights = where.strip(), factory.strip(), weights.strip()
    if at and (where not in ZOOS or not re.fullmatch(r"\w+", weights)):
        raise AttribAuditError(
            f"bad architecture spec {spec!r}: only torchvision:NAME@WEIGHTS and "
            "timm:NAME@TAG name weights (e.g. torchvision:resnet50@IMAGENET1K_V2)"
        )
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
    return ArchSpec(where, factory, kwargs, weights or None)


def known_architectures(where: str) -> tuple[str, ...]:
    """The factories of ``where`` a checkpoint's card may name without the trust flag:
    torchvision's classification models, timm's models (where timm is installed) and the
    bundled models' architectures."""
    if where == "torchvision":
        import torchvision.models

        return tuple(torchvision.models.list_models(module=torchvision.models))
    if where == "timm":
        try:
            import timm
        except ImportError:
            return ()
        return tuple(timm.list_models())
    if where == ZOO_MODULE:
        from attrib_audit.models import zoo

        return zoo.FACTORIES
    return ()


def is_known(spec: str) -> bool:
    """Whether ``spec`` names a known architecture (it is parsed, never imported)."""
    parsed = parse_arch(spec)
    return parsed.factory in known_architectures(parsed.where)


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
    where, factory, kwargs, _ = parse_arch(spec)
    kwargs = {**(extra_kwargs or {}), **kwargs}
    if where in ZOOS:
        _check_zoo_name(where, factory)
        if _weights_args(kwargs):
            raise AttribAuditError(
                f"architecture {spec!r}: drop {', '.join(_weights_args(kwargs))}; the weights "
                "come from the checkpoint file, nothing is downloaded"
            )
    if where == "torchvision":
        import torchvision.models

        module = torchvision.models
    elif where == "timm":
        import timm

        def create(**kw):
            return timm.create_model(factory, pretrained=False, **kw)

        return _built(spec, create, kwargs)
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
    return _built(spec, fn, kwargs)


def _built(spec: str, fn, kwargs: dict[str, Any]) -> nn.Module:
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


def _check_zoo_name(where: str, factory: str) -> None:
    if where == "timm":
        try:
            import timm  # noqa: F401
        except ImportError:
            raise AttribAuditError(TIMM_MISSING) from None
    if factory not in known_architectures(where):
        listing = (
            "torchvision.models.list_models()" if where == "torchvision" else "timm.list_models()"
        )
        raise AttribAuditError(f"{where} has no classification model {factory!r}; see {listing}")


def zoo_card(spec: str) -> dict[str, Any] | None:
    """The card fields that a zoo spec's ``@WEIGHTS`` metadata gives (input shape, value range,
    mean, std, class names), or None when the spec names no weights. Read from torchvision's
    weights enums or timm's pretrained configs; nothing is downloaded.

    Raises:
        AttribAuditError: unknown model or weights (naming the ones there are).
    """
    where, factory, _, weights = parse_arch(spec)
    if weights is None:
        return None
    _check_zoo_name(where, factory)
    if where == "torchvision":
        return _torchvision_card(factory, weights)
    return _timm_card(factory, weights)


def _torchvision_card(factory: str, weights: str) -> dict[str, Any]:
    import torchvision.models

    enum = torchvision.models.get_model_weights(factory)
    try:
        w = enum[weights]
    except KeyError:
        names = ", ".join(m for m in enum.__members__ if m != "DEFAULT")
        raise AttribAuditError(
            f"torchvision has no weights {weights!r} for {factory}; it has {names} (or DEFAULT)"
        ) from None
    t = w.transforms()
    crop = list(t.crop_size)
    h, w_ = (crop * 2)[:2] if len(crop) == 1 else crop
    return {
        "input_shape": [3, h, w_],
        "resize": int(t.resize_size[0]),
        "value_range": [0.0, 1.0],
        "mean": list(t.mean),
        "std": list(t.std),
        "classes": list(w.meta["categories"]),
    }


def _timm_card(factory: str, tag: str) -> dict[str, Any]:
    import timm
    from timm.data import ImageNetInfo, infer_imagenet_subset
    from timm.models import get_pretrained_cfg

    name = factory if tag == "default" else f"{factory}.{tag}"
    try:
        cfg = get_pretrained_cfg(name)
    except RuntimeError:  # "Invalid pretrained tag"
        cfg = None
    if cfg is None:
        tags = [n.partition(".")[2] for n in timm.list_pretrained(f"{factory}.*")]
        raise AttribAuditError(
            f"timm has no pretrained config {name!r}; its tags for {factory}: "
            f"{', '.join(tags) or 'none'} (or default)"
        )
    card: dict[str, Any] = {
        "input_shape": list(cfg.input_size),
        # timm's eval transform: the shorter side to crop / crop_pct, then the centre crop
        "resize": math.floor(min(cfg.input_size[1:]) / cfg.crop_pct),
        "value_range": [0.0, 1.0],
        "mean": list(cfg.mean),
        "std": list(cfg.std),
    }
    subset = infer_imagenet_subset(cfg)
    if subset is not None:
        info = ImageNetInfo(subset)
        names = [info.index_to_description(i).split(",")[0] for i in range(cfg.num_classes)]
        twice = {n for n in names if names.count(n) > 1}  # ImageNet's two cranes, two maillots
        card["classes"] = [
            f"{n} ({info.index_to_label_name(i)})" if n in twice else n for i, n in enumerate(names)
        ]
    return card
