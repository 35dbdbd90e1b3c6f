"""Contract checks over every registered attack."""

import copy

import pytest
import torch

from attrib_audit.attributions import saliency
from attrib_audit.models import smooth_surrogate
from attrib_audit.registry import ATTACKS

EPS = 0.1
VR = (0.0, 1.0)


@pytest.fixture(scope="module")
def setup(digits_model, digits_data):
    model = copy.deepcopy(digits_model.module)
    x = digits_data.x[:12]
    with torch.no_grad():
        pred = model(x).argmax(1)
    return model, smooth_surrogate(model, 10.0), x, pred


def _run(name, model, surrogate, x, pred, *, epsilon=EPS, seed=0, restarts=1):
    entry = ATTACKS.get(name)
    kwargs = {
        "steps": 4,
        "step_size": epsilon / 3,
        "restarts": restarts,
        "seed": seed,
        "value_range": VR,
    }
    if "k" in entry.defaults:  # the top-k attacks' own k
        kwargs["k"] = 8
    return entry.obj(model, surrogate, x, pred, saliency, epsilon=epsilon, **kwargs)


@pytest.mark.parametrize("name", ATTACKS.names())
def test_output_lies_in_the_ball_and_the_value_range(setup, name):
    model, surrogate, x, pred = setup
    x_adv = _run(name, model, surrogate, x, pred)
    assert x_adv.shape == x.shape
    assert (x_adv - x).abs().max() <= EPS + 1e-6
    assert x_adv.min() >= VR[0] and x_adv.max() <= VR[1]
    assert not torch.equal(x_adv, x), "the attack moved nothing"


@pytest.mark.parametrize("name", ATTACKS.names())
def test_epsilon_zero_returns_x(setup, name):
    model, surrogate, x, pred = setup
    torch.testing.assert_close(
        _run(name, model, surrogate, x, pred, epsilon=0.0), x, rtol=0, atol=0
    )


@pytest.mark.parametrize(
    "name", [n for n in ATTACKS.names() if ATTACKS.get(n).facts.keeps_prediction]
)
def test_prediction_kept_for_every_attacked_sample(setup, name):
    model, surrogate, x, pred = setup
    x_adv = _run(name, model, surrogate, x, pred, epsilon=0.3)
    attacked = (x_adv != x).flatten(1).any(1)
    assert attacked.any()
    with torch.no_grad():
        assert torch.equal(model(x_adv[attacked]).argmax(1), pred[attacked])


@pytest.mark.parametrize("name", ATTACKS.names())
def test_deterministic_under_a_seed(setup, name):
    model, surrogate, x, pred = setup
    a = _run(name, model, surrogate, x, pred, seed=3)
    b = _run(name, model, surrogate, x, pred, seed=3)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("name", ATTACKS.names())
def test_model_mode_and_requires_grad_restored(setup, name):
    model, surrogate, x, pred = setup
    model, surrogate = copy.deepcopy(model), copy.deepcopy(surrogate)
    model.train()
    params = list(model.parameters())
    params[0].requires_grad_(True)
    flags = [p.requires_grad for p in params]
    sflags = [p.requires_grad for p in surrogate.parameters()]
    surrogate.train()
    _run(name, model, surrogate, x, pred)
    assert model.training and surrogate.training
    assert [p.requires_grad for p in params] == flags
    assert [p.requires_grad for p in surrogate.parameters()] == sflags
    assert all(p.grad is None for p in params)


def test_pgd_lowers_accuracy(setup):
    model, surrogate, x, pred = setup
    x_adv = _run("pgd", model, surrogate, x, pred, epsilon=0.3)
    with torch.no_grad():
        assert (model(x_adv).argmax(1) != pred).float().mean() > 0.5
