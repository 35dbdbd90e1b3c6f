"""Contract checks for methods, attacks, metrics and objectives, one call per entry.

The project's own tests run them over every registered entry; plugin authors run them on
theirs::

    from attrib_audit.testing import check_method
    check_method("vargrad")          # a registered name, or the callable itself

Each check raises ``AssertionError`` naming the broken part of the contract
(docs/CONTRIBUTING.md, "The contracts").
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["check_attack", "check_method", "check_metric", "check_objective", "tiny_model"]

VALUE_RANGE = (0.0, 1.0)


def tiny_model(
    activation: type[nn.Module] = nn.ReLU, *, channels: int = 3, classes: int = 4, seed: int = 0
) -> nn.Module:
    """A small float64 CNN for contract checks (input (B, channels, 8, 8))."""
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(channels, 6, 3, padding=1),
        activation(),
        nn.Conv2d(6, 6, 3, stride=2, padding=1),
        activation(),
        nn.Flatten(),
        nn.Linear(6 * 4 * 4, classes),
    ).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5)
    return model.eval()


def _inputs(n: int = 3, channels: int = 3, seed: int = 1) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, channels, 8, 8, generator=g, dtype=torch.float64)


def _resolve(kind: str, entry: str | Callable) -> tuple[Callable, dict[str, Any], str]:
    """The callable, its facts and its name; for a declared entry, also check that its
    settings class builds from its defaults and that every setting is a keyword the callable
    takes (the audit passes settings by name)."""
    import dataclasses

    from attrib_audit.registry import ENTRY_ATTRIBUTE, REGISTRIES

    e = REGISTRIES[kind].get(entry) if isinstance(entry, str) else None
    e = e or getattr(entry, ENTRY_ATTRIBUTE, None)
    if e is None:
        return entry, {}, getattr(entry, "__name__", repr(entry))
    name = e.name
    settings = e.params()  # raises if a default is out of its own range
    signature = inspect.signature(e.obj).parameters
    for f in dataclasses.fields(settings):
        assert _accepts(e.obj, f.name), (
            f"{name}: setting {f.name!r} is not a keyword argument of the callable"
        )
        declared, p = getattr(settings, f.name), signature.get(f.name)
        # None: filled from the audit's context (an attack's k is the audit's --k)
        if declared is not None and p is not None and p.default is not p.empty:
            assert p.default == declared, (
                f"{name}: setting {f.name!r} defaults to {declared!r} in its settings class "
                f"but to {p.default!r} in the callable's signature"
            )
    return e.obj, dataclasses.asdict(e.facts) if e.facts is not None else {}, name


def _accepts(fn: Callable, name: str) -> bool:
    params = inspect.signature(fn).parameters
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _state(*modules: nn.Module):
    return [(m.training, [p.requires_grad for p in m.parameters()]) for m in modules]


def _prime_state(model: nn.Module) -> None:
    """Train mode and mixed requires_grad flags: what a careless entry would clobber."""
    model.train()
    for i, p in enumerate(model.parameters()):
        p.requires_grad_(i % 2 == 0)
        p.grad = None


def _seeded_call(fn: Callable, *args, seed: int = 0, **kwargs):
    if _accepts(fn, "seed"):
        kwargs.setdefault("seed", seed)
    torch.manual_seed(seed)  # for entries that draw from the global RNG
    return fn(*args, **kwargs)


def check_method(method: str | Callable, **params: Any) -> None:
    """An attribution method: a map shaped like x, finite, deterministic under a seed, model
    mode and ``requires_grad`` flags restored, no parameter gradients left behind, and (when
    it supports ``create_graph``) a map differentiable with respect to x."""
    fn, meta, name = _resolve("method", method)
    if _accepts(fn, "value_range"):
        params.setdefault("value_range", VALUE_RANGE)
    model = tiny_model()
    x = _inputs()
    target = torch.tensor([0, 1, 3])
    _prime_state(model)
    before = _state(model)
    a = _seeded_call(fn, model, x, target, **params)
    assert isinstance(a, Tensor), f"{name}: returned {type(a).__name__}, not a Tensor"
    assert a.shape == x.shape, (
        f"{name}: returned shape {tuple(a.shape)}, expected x's {tuple(x.shape)}"
    )
    assert torch.isfinite(a).all(), f"{name}: the map has non-finite values"
    assert _state(model) == before, f"{name}: the model's mode or requires_grad flags changed"
    assert all(p.grad is None for p in model.parameters()), (
        f"{name}: left gradients in the model's parameters"
    )
    b = _seeded_call(fn, model, x, target, **params)
    assert torch.equal(a, b), f"{name}: two calls with the same seed differ"
    if meta.get("stochastic"):
        c = _seeded_call(fn, model, x, target, seed=1, **params)
        assert not torch.equal(a, c), f"{name}: declared stochastic, but two seeds agree"
    if meta.get("create_graph", _accepts(fn, "create_graph")):
        smooth = tiny_model(nn.Softplus)
        xg = x.clone().requires_grad_(True)
        m = _seeded_call(fn, smooth, xg, target, create_graph=True, **params)
        assert m.requires_grad, f"{name}: create_graph=True gave a map detached from x"
        (g,) = torch.autograd.grad(m.pow(2).sum(), xg, allow_unused=True)
        assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0, (
            f"{name}: create_graph=True gave no usable gradient with respect to x"
        )


def check_metric(metric: str | Callable, **params: Any) -> None:
    """A metric: (B,) finite values for maps (B, H, W), deterministic, and a map compared with
    itself at least as similar as with an unrelated map."""
    fn, meta, name = _resolve("metric", metric)
    g = torch.Generator().manual_seed(0)
    a = torch.rand(4, 8, 8, generator=g, dtype=torch.float64)
    b = torch.rand(4, 8, 8, generator=g, dtype=torch.float64)
    if meta.get("on") == "raw":
        a, b = a[:, None], b[:, None]
    if meta.get("inputs"):  # inputs (B, C, H, W) the maps explain
        x = torch.rand(4, 1, 8, 8, generator=g, dtype=torch.float64)
        params = {"x": x, "x_adv": (x + 0.1 * torch.rand(x.shape, generator=g)), **params}
    v = fn(a, b, **params)
    assert isinstance(v, Tensor) and v.shape == (4,), (
        f"{name}: returned {getattr(v, 'shape', type(v))}, expected shape (4,)"
    )
    assert torch.isfinite(v).all(), f"{name}: non-finite values for random maps"
    assert torch.equal(v, fn(a, b, **params)), f"{name}: two calls differ"
    same = fn(a, a, **params)
    higher = meta.get("higher_is_robust", True)
    ok = (same >= v - 1e-9) if higher else (same <= v + 1e-9)
    assert bool(ok.all()), (
        f"{name}: a map is less similar to itself than to another map (higher_is_robust={higher})"
    )


def check_attack(attack: str | Callable, *, epsilon: float = 0.1, **params: Any) -> None:
    """An attack: output in the epsilon ball and the value range, epsilon 0 returns x, the
    prediction kept for every perturbed sample (unless registered with
    ``keeps_prediction=False``), deterministic under a seed, model and surrogate mode and
    ``requires_grad`` flags restored."""
    from attrib_audit.attributions import saliency
    from attrib_audit.models import smooth_surrogate

    fn, meta, name = _resolve("attack", attack)
    model = tiny_model()
    surrogate = smooth_surrogate(model, 10.0)
    x = _inputs(6)
    with torch.no_grad():
        pred = model(x).argmax(1)
    kwargs = {"steps": 5, "step_size": epsilon / 4, "value_range": VALUE_RANGE, **params}
    kwargs = {k: v for k, v in kwargs.items() if _accepts(fn, k)}
    _prime_state(model)
    _prime_state(surrogate)
    before = _state(model, surrogate)
    x_adv = _seeded_call(fn, model, surrogate, x, pred, saliency, epsilon=epsilon, **kwargs)
    assert _state(model, surrogate) == before, (
        f"{name}: the model's or surrogate's mode or requires_grad flags changed"
    )
    assert isinstance(x_adv, Tensor) and x_adv.shape == x.shape, (
        f"{name}: returned shape {tuple(getattr(x_adv, 'shape', ()))}, expected {tuple(x.shape)}"
    )
    assert (x_adv - x).abs().max() <= epsilon + 1e-9, f"{name}: left the epsilon ball"
    assert x_adv.min() >= VALUE_RANGE[0] and x_adv.max() <= VALUE_RANGE[1], (
        f"{name}: left the value range"
    )
    if meta.get("keeps_prediction", True):
        moved = (x_adv != x).flatten(1).any(1)
        with torch.no_grad():
            kept = model.eval()(x_adv).argmax(1) == pred
        assert bool(kept[moved].all()), f"{name}: changed the prediction of a perturbed sample"
    again = _seeded_call(fn, model, surrogate, x, pred, saliency, epsilon=epsilon, **kwargs)
    assert torch.equal(x_adv, again), f"{name}: two calls with the same seed differ"
    zero = _seeded_call(fn, model, surrogate, x, pred, saliency, epsilon=0.0, **kwargs)
    assert torch.equal(zero, x), f"{name}: epsilon 0 did not return x"


def check_objective(objective: str | Callable, **params: Any) -> None:
    """An objective: a finite scalar loss whose named terms add up to it, finite gradients for
    the parameters, and the parameters' ``requires_grad`` flags restored."""
    from attrib_audit.objectives import Loss

    fn, _, name = _resolve("objective", objective)
    model = tiny_model(nn.Softplus).train()
    x, y = _inputs(4), torch.tensor([0, 1, 2, 3])
    if _accepts(fn, "generator"):
        params.setdefault("generator", torch.Generator().manual_seed(0))
    loss = fn(model, x, y, **params)
    assert isinstance(loss, Loss), f"{name}: returned {type(loss).__name__}, not a Loss"
    assert torch.isfinite(loss.total), f"{name}: the loss is not finite"
    total = sum(loss.terms.values())
    assert torch.allclose(loss.total, total), f"{name}: the named terms do not add up to the loss"
    assert all(p.requires_grad for p in model.parameters()), (
        f"{name}: left parameters without requires_grad"
    )
    loss.total.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads), (
        f"{name}: missing or non-finite parameter gradients"
    )
