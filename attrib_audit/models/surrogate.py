"""The smooth surrogate: a copy of a model with every ReLU replaced by softplus (SSR, Sec. 2).

A ReLU network's input Hessian is zero almost everywhere, so second-order attacks, which
differentiate an attribution with respect to the input, get no signal from it. The surrogate
replaces

- ``nn.ReLU`` (in-place too) by ``softplus_beta``,
- ``nn.ReLU6`` / ``nn.Hardtanh`` / ``nn.LeakyReLU`` / ``nn.PReLU`` by their smooth
  counterparts (``clamp(x, a, b) = a + relu(x - a) - relu(x - b)`` and
  ``s x + (1 - s) relu(x)`` with softplus for relu),
- ``nn.Hardsigmoid`` (``relu6(x + 3) / 6``) and ``nn.Hardswish`` (``x hardsigmoid(x)``),
  MobileNetV3's activations, the same way,
- calls of ``F.relu``, ``torch.relu``, ``Tensor.relu`` (and ``_``-in-place forms),
  ``F.relu6``, ``F.leaky_relu``, ``F.hardtanh``, ``F.hardsigmoid``, ``F.hardswish`` and
  ``F.prelu`` made inside ``forward``, through a ``TorchFunctionMode`` active while the
  surrogate runs.

Activations that are smooth already (SiLU, GELU, ELU, SELU, CELU, Mish, Sigmoid, Tanh,
Softplus) are kept. Piecewise operations that have no smooth stand-in here (max pooling) are kept
too and reported in ``piecewise``: their second derivative is zero, but the activations around
them carry the signal. ReLUs compiled into TorchScript cannot be replaced; they are listed in
``unreplaced``.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from attrib_audit.errors import AttribAuditError

DEFAULT_BETA = 10.0


def _sp(x: Tensor, beta: float) -> Tensor:
    return F.softplus(x, beta=beta)


def smooth_relu(x: Tensor, beta: float) -> Tensor:
    return _sp(x, beta)


def smooth_hardtanh(x: Tensor, beta: float, lo: float = -1.0, hi: float = 1.0) -> Tensor:
    return lo + _sp(x - lo, beta) - _sp(x - hi, beta)


def smooth_leaky_relu(x: Tensor, beta: float, slope: float | Tensor = 0.01) -> Tensor:
    return slope * x + (1 - slope) * _sp(x, beta)


def smooth_hardsigmoid(x: Tensor, beta: float) -> Tensor:
    return smooth_hardtanh(x + 3, beta, 0.0, 6.0) / 6


def smooth_hardswish(x: Tensor, beta: float) -> Tensor:
    return x * smooth_hardsigmoid(x, beta)


def smooth_prelu(x: Tensor, beta: float, weight: Tensor) -> Tensor:
    """PReLU's per-channel slope (channel dim 1) on the softplus form of leaky ReLU."""
    slope = weight.reshape(-1, *([1] * (x.dim() - 2))) if x.dim() > 1 else weight
    return smooth_leaky_relu(x, beta, slope)


class SmoothActivation(nn.Module):
    """A smooth stand-in for one piecewise-linear activation module."""

    def __init__(self, kind: str, beta: float, **params: float) -> None:
        super().__init__()
        self.kind, self.beta, self.params = kind, beta, params

    def forward(self, x: Tensor) -> Tensor:
        if self.kind == "relu":
            return smooth_relu(x, self.beta)
        if self.kind == "hardtanh":
            return smooth_hardtanh(x, self.beta, **self.params)
        if self.kind == "hardsigmoid":
            return smooth_hardsigmoid(x, self.beta)
        if self.kind == "hardswish":
            return smooth_hardswish(x, self.beta)
        return smooth_leaky_relu(x, self.beta, **self.params)


class SmoothPReLU(nn.Module):
    """PReLU with softplus for relu; the learned slopes are the original module's."""

    def __init__(self, prelu: nn.PReLU, beta: float) -> None:
        super().__init__()
        self.weight, self.beta = prelu.weight, beta

    def forward(self, x: Tensor) -> Tensor:
        return smooth_prelu(x, self.beta, self.weight)

    def extra_repr(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.kind}, beta={self.beta}" + (f", {args}" if args else "")


def _smooth_module(m: nn.Module, beta: float) -> nn.Module | None:
    if isinstance(m, nn.ReLU):
        return SmoothActivation("relu", beta)
    if isinstance(m, nn.Hardtanh):  # ReLU6 is a Hardtanh(0, 6)
        return SmoothActivation("hardtanh", beta, lo=float(m.min_val), hi=float(m.max_val))
    if isinstance(m, nn.LeakyReLU):
        return SmoothActivation("leaky_relu", beta, slope=float(m.negative_slope))
    if isinstance(m, nn.Hardsigmoid):
        return SmoothActivation("hardsigmoid", beta)
    if isinstance(m, nn.Hardswish):
        return SmoothActivation("hardswish", beta)
    if isinstance(m, nn.PReLU):
        return SmoothPReLU(m, beta)
    return None


# kept as they are: already smooth, or piecewise with no smooth stand-in (reported)
SMOOTH_ALREADY = (
    nn.SiLU,
    nn.GELU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.Mish,
    nn.Sigmoid,
    nn.Tanh,
    nn.Softplus,
)
PIECEWISE = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d)


def _arg(args, kwargs, i: int, name: str, default):
    return args[i] if len(args) > i else kwargs.get(name, default)


def _functional_table(beta: float) -> dict[Callable, tuple[Callable, bool]]:
    """func -> (smooth replacement taking (args, kwargs), whether the call is in place)."""
    relu = lambda a, k: smooth_relu(a[0], beta)  # noqa: E731
    relu6 = lambda a, k: smooth_hardtanh(a[0], beta, 0.0, 6.0)  # noqa: E731

    def hardtanh(a, k):
        lo = _arg(a, k, 1, "min_val", -1.0)
        return smooth_hardtanh(a[0], beta, lo, _arg(a, k, 2, "max_val", 1.0))

    def leaky(a, k):
        return smooth_leaky_relu(a[0], beta, _arg(a, k, 1, "negative_slope", 0.01))

    def prelu(a, k):
        return smooth_prelu(a[0], beta, _arg(a, k, 1, "weight", None))

    hardsigmoid = lambda a, k: smooth_hardsigmoid(a[0], beta)  # noqa: E731
    hardswish = lambda a, k: smooth_hardswish(a[0], beta)  # noqa: E731

    table: dict[Callable, tuple[Callable, bool]] = {
        F.relu: (relu, False),
        torch.relu: (relu, False),
        Tensor.relu: (relu, False),
        F.relu_: (relu, True),
        torch.relu_: (relu, True),
        Tensor.relu_: (relu, True),
        F.relu6: (relu6, False),
        F.hardtanh: (hardtanh, False),
        F.hardtanh_: (hardtanh, True),
        F.leaky_relu: (leaky, False),
        F.leaky_relu_: (leaky, True),
        F.hardsigmoid: (hardsigmoid, False),
        F.hardswish: (hardswish, False),
        F.prelu: (prelu, False),
        torch.prelu: (prelu, False),
    }
    return table


# F.relu(x, inplace=True) etc. are in-place through a keyword
_INPLACE_KW = {
    F.relu: 1,
    F.relu6: 1,
    F.hardtanh: 3,
    F.leaky_relu: 2,
    F.hardsigmoid: 1,
    F.hardswish: 1,
}


class _SoftplusMode(TorchFunctionMode):
    def __init__(self, beta: float) -> None:
        super().__init__()
        self.table = _functional_table(beta)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        hit = self.table.get(func)
        if hit is None:
            return func(*args, **kwargs)
        fn, inplace = hit
        if func in _INPLACE_KW:
            inplace = bool(_arg(args, kwargs, _INPLACE_KW[func], "inplace", False))
        if not inplace:
            return fn(args, kwargs)
        x = args[0]
        # callers of in-place forms may ignore the return value: write back into x, from a
        # copy so the softplus graph does not depend on the overwritten values
        return x.copy_(fn((x.clone(), *args[1:]), kwargs))


RELU_FUNCS = frozenset(_functional_table(1.0))
_SCRIPT_RELUS = {
    "aten::relu",
    "aten::relu_",
    "aten::relu6",
    "aten::hardtanh",
    "aten::hardtanh_",
    "aten::leaky_relu",
    "aten::leaky_relu_",
    "aten::hardsigmoid",
    "aten::hardsigmoid_",
    "aten::hardswish",
    "aten::hardswish_",
    "aten::prelu",
}


class SmoothSurrogate(nn.Module):
    """``module`` with its ReLUs replaced; ``replaced`` and ``unreplaced`` say where.

    Shape:
        x: (B, C, H, W)
        returns: (B, K)
    """

    def __init__(
        self,
        module: nn.Module,
        beta: float,
        replaced: list[str],
        unreplaced: list[str],
        piecewise: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.module = module
        self.beta = beta
        self.replaced = replaced
        self.unreplaced = unreplaced
        self.piecewise = piecewise or []  # kept piecewise ops (max pooling), by module name

    def set_beta(self, beta: float) -> None:
        """Change the sharpness everywhere (the manipulate attack anneals it)."""
        self.beta = float(beta)
        for m in self.module.modules():
            if isinstance(m, (SmoothActivation, SmoothPReLU)):
                m.beta = self.beta

    def forward(self, *args, **kwargs):
        # attention through the math kernel: the fused ones (flash, memory-efficient) have no
        # double backward, which the second-order attacks take through the surrogate
        with _SoftplusMode(self.beta), _math_attention():
            return self.module(*args, **kwargs)


def _math_attention():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel(SDPBackend.MATH)


def _script_relus(name: str, m: torch.jit.ScriptModule) -> list[str]:
    found = []
    try:
        graph = m.inlined_graph
    except (AttributeError, RuntimeError):
        return [f"{name or 'model'} (TorchScript; activations not inspectable)"]
    for node in graph.nodes():
        if node.kind() in _SCRIPT_RELUS:
            where = node.sourceRange().strip().splitlines()
            line = where[0].strip() if where else ""
            found.append(
                f"{name or 'model'}: {node.kind()} in TorchScript" + (f" ({line})" if line else "")
            )
    return found


def smooth_surrogate(module: nn.Module, beta: float = DEFAULT_BETA) -> SmoothSurrogate:
    """A deep copy of ``module`` with every ReLU-like activation made smooth (softplus, beta).

    The original module is untouched. Activations that cannot be replaced (TorchScript) are
    listed in ``SmoothSurrogate.unreplaced`` and reported with a warning.
    """
    if beta <= 0:
        raise AttribAuditError(f"beta must be > 0, got {beta}")
    copy_ = copy.deepcopy(module)
    replaced: list[str] = []
    unreplaced: list[str] = []
    piecewise: list[str] = []
    scripted: list[str] = []
    for name, parent in list(copy_.named_modules()):
        if any(name == s or name.startswith(s + ".") for s in scripted):
            continue
        if isinstance(parent, torch.jit.ScriptModule):
            scripted.append(name)
            unreplaced.extend(_script_relus(name, parent))
            continue
        for child_name, child in list(parent.named_children()):
            where = f"{name}.{child_name}" if name else child_name
            new = _smooth_module(child, beta)
            if new is not None:
                setattr(parent, child_name, new)
                replaced.append(where)
            elif isinstance(child, PIECEWISE):
                piecewise.append(f"{type(child).__name__} {where}")
    if unreplaced:
        warnings.warn(
            f"{len(unreplaced)} ReLU(s) could not be made smooth: {'; '.join(unreplaced[:5])}",
            stacklevel=2,
        )
    surrogate = SmoothSurrogate(copy_, float(beta), replaced, unreplaced, piecewise)
    return surrogate.train(module.training)


_RELU_MODULES = (nn.ReLU, nn.Hardtanh, nn.LeakyReLU, nn.Hardsigmoid, nn.Hardswish, nn.PReLU)


class _ReluRecorder(TorchFunctionMode):
    def __init__(self, stack: list[tuple[str, nn.Module | None]]) -> None:
        super().__init__()
        self.stack, self.calls = stack, []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name, module = self.stack[-1]
        if func in RELU_FUNCS and not isinstance(module, _RELU_MODULES):
            fname = getattr(func, "__name__", str(func))
            self.calls.append(f"{fname} call in forward of {name or 'model'}")
        return func(*args, **(kwargs or {}))


def find_relus(module: nn.Module, x: Tensor) -> list[str]:
    """Where ``module`` still applies a ReLU-like function on input ``x``: activation modules,
    functional calls seen while running it (with the module they were called from), and
    TorchScript graph nodes."""
    found = []
    stack: list[tuple[str, nn.Module | None]] = [("", None)]
    hooks = []

    def enter(name, m):
        def hook(_m, _args):
            stack.append((name, m))

        return hook

    def leave(_m, _args, _out):
        stack.pop()  # a forward hook must return None, or it replaces the output

    for name, m in module.named_modules():
        if isinstance(m, torch.jit.ScriptModule):
            found.extend(_script_relus(name, m))
            continue
        if isinstance(m, _RELU_MODULES):
            found.append(f"{type(m).__name__} module {name}")
        hooks.append(m.register_forward_pre_hook(enter(name, m)))
        hooks.append(m.register_forward_hook(leave))
    try:
        recorder = _ReluRecorder(stack)
        with torch.no_grad(), recorder:
            module(x)
    finally:
        for h in hooks:
            h.remove()
    return found + recorder.calls


@dataclass(frozen=True)
class Agreement:
    """How well a surrogate stands in for its model on a batch."""

    prediction_agreement: float  # fraction of samples with the same argmax
    map_cosine: float  # mean cosine similarity of their saliency maps (model's predictions)
    n: int


def surrogate_agreement(
    model: nn.Module, surrogate: nn.Module, x: Tensor, *, max_batch: int | None = None
) -> Agreement:
    """Prediction agreement and saliency-map cosine of ``surrogate`` against ``model`` on ``x``.

    Shape:
        x: (B, C, H, W)
    """
    from attrib_audit.attributions import saliency

    with torch.no_grad():
        pred = model(x).argmax(1)
        spred = surrogate(x).argmax(1)
    a = saliency(model, x, pred, max_batch=max_batch).flatten(1)
    b = saliency(surrogate, x, pred, max_batch=max_batch).flatten(1)
    cos = F.cosine_similarity(a, b, dim=1, eps=1e-12)
    return Agreement(float((pred == spred).float().mean()), float(cos.mean()), int(x.shape[0]))
