"""Every registered entry honours its contract, and the checks catch entries that do not."""

import pytest
import torch

from attrib_audit.registry import ATTACKS, METHODS, METRICS, OBJECTIVES
from attrib_audit.testing import check_attack, check_method, check_metric, check_objective

FAST = {"ig": {"steps": 4}, "sg": {"samples": 3}, "ug": {"samples": 3}}
OBJECTIVE_FAST = {
    "epsilon": 0.1,
    "steps": 2,
    "step_size": 0.05,
    "m_attack": 2,
    "m_grad": 2,
    "m": 2,
    "iterations": 3,
    "s": 1.0,
}


@pytest.mark.parametrize("name", METHODS.names())
def test_methods(name):
    check_method(name, **FAST.get(name, {}))


@pytest.mark.parametrize("name", METRICS.names())
def test_metrics(name):
    check_metric(name)


@pytest.mark.parametrize("name", ATTACKS.names())
def test_attacks(name):
    check_attack(name)


@pytest.mark.parametrize("name", OBJECTIVES.names())
def test_objectives(name):
    import inspect

    fn = OBJECTIVES.get(name).obj
    params = {k: v for k, v in OBJECTIVE_FAST.items() if k in inspect.signature(fn).parameters}
    check_objective(name, **params)


def wrong_shape(model, x, target, *, create_graph=False):
    return x.sum(1)


def leaves_train_mode(model, x, target, *, create_graph=False):
    model.eval()  # forgets to restore the caller's mode
    x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(model(x).gather(1, target[:, None]).sum(), x)
    return g


_CALLS = [0]


def unseeded(model, x, target, *, create_graph=False, seed=None):
    _CALLS[0] += 1  # hidden state: a different map on every call, whatever the seed
    return torch.full_like(x, float(_CALLS[0]))


def test_checks_fail_on_broken_methods():
    with pytest.raises(AssertionError, match="shape"):
        check_method(wrong_shape)
    with pytest.raises(AssertionError, match="mode or requires_grad"):
        check_method(leaves_train_mode)
    with pytest.raises(AssertionError, match="same seed differ"):
        check_method(unseeded)


def escapes_the_ball(model, surrogate, x, target, method, *, epsilon, steps, step_size):
    return (x + 2 * epsilon).clamp(0, 1)


def freezes_the_model(model, surrogate, x, target, method, *, epsilon, steps, step_size):
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return x.clone()


def test_checks_fail_on_broken_attacks():
    with pytest.raises(AssertionError, match="epsilon ball"):
        check_attack(escapes_the_ball)
    with pytest.raises(AssertionError, match="mode or requires_grad"):
        check_attack(freezes_the_model)


def test_checks_fail_on_broken_metrics_and_objectives():
    from attrib_audit.objectives import Loss

    with pytest.raises(AssertionError, match="expected shape"):
        check_metric(lambda a, b: (a - b).abs().mean())
    with pytest.raises(AssertionError, match="less similar to itself"):
        check_metric(lambda a, b: (a - b).abs().flatten(1).sum(1) + 1.0)  # a distance

    def bad_terms(model, x, y):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        return Loss(loss, {"ce": loss, "extra": loss})

    with pytest.raises(AssertionError, match="do not add up"):
        check_objective(bad_terms)
