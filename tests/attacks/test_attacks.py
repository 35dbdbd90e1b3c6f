import copy
from functools import partial

import pytest
import torch
from torch import nn

from attrib_audit.attacks import ifia_mass_center, ifia_topk, manipulate, random_noise
from attrib_audit.attributions import integrated_gradients, saliency
from attrib_audit.metrics import com_dislocation, reduce_map, topk_intersection
from attrib_audit.models import smooth_surrogate
from tests.conftest import tiny_cnn


@pytest.fixture(scope="module")
def digits(digits_model, digits_data):
    model = copy.deepcopy(digits_model.module)
    x = digits_data.x[:48]
    with torch.no_grad():
        pred = model(x).argmax(1)
    return model, smooth_surrogate(model, 10.0), x, pred


@pytest.mark.parametrize("method", [saliency, partial(integrated_gradients, steps=8)])
def test_ifia_topk_beats_random_noise_on_the_digits_model(digits, method):
    model, surrogate, x, pred = digits
    eps, k = 0.1, 8
    clean = reduce_map(method(model, x, pred))
    common = {"epsilon": eps, "steps": 10, "step_size": eps / 4, "seed": 0}
    attacked = ifia_topk(model, surrogate, x, pred, method, k=k, **common)
    noisy = random_noise(model, surrogate, x, pred, method, **common)
    ti_attack = topk_intersection(clean, reduce_map(method(model, attacked, pred)), k=k)
    ti_random = topk_intersection(clean, reduce_map(method(model, noisy, pred)), k=k)
    assert ti_attack.mean() < ti_random.mean() - 0.05


def test_mass_center_attack_moves_the_center_more_than_noise(digits):
    model, surrogate, x, pred = digits
    clean = reduce_map(saliency(model, x, pred))
    common = {"epsilon": 0.1, "steps": 10, "step_size": 0.025, "seed": 0}
    a = ifia_mass_center(model, surrogate, x, pred, saliency, **common)
    r = random_noise(model, surrogate, x, pred, saliency, **common)
    moved_a = com_dislocation(clean, reduce_map(saliency(model, a, pred))).mean()
    moved_r = com_dislocation(clean, reduce_map(saliency(model, r, pred))).mean()
    assert moved_a > moved_r


class Shifted(nn.Module):
    """The surrogate of ``model`` with one logit raised: its predictions differ from the
    model's, while its gradients stay informative."""

    def __init__(self, surrogate, cls, shift):
        super().__init__()
        self.inner, self.cls, self.shift = surrogate, cls, shift

    def forward(self, x):
        out = self.inner(x).clone()
        out[:, self.cls] += self.shift
        return out


def test_the_prediction_check_uses_the_model_not_the_surrogate(digits):
    model, surrogate, x, pred = digits
    liar = Shifted(surrogate, cls=0, shift=1e3)
    with torch.no_grad():
        assert (liar(x).argmax(1) != model(x).argmax(1)).float().mean() > 0.5  # they disagree
    x_adv = ifia_topk(
        model, liar, x, pred, saliency, epsilon=0.2, steps=8, step_size=0.05, k=8, seed=0
    )
    attacked = (x_adv != x).flatten(1).any(1)
    assert attacked.float().mean() > 0.5
    with torch.no_grad():
        assert torch.equal(model(x_adv).argmax(1), pred)  # kept on the model


def test_manipulate_moves_the_map_towards_its_target(digits):
    model, surrogate, x, pred = digits
    clean = reduce_map(saliency(model, x, pred))
    target = clean.roll(1, dims=0)
    x_adv = manipulate(
        model, surrogate, x, pred, saliency, epsilon=0.1, steps=10, step_size=0.02, seed=0
    )
    after = reduce_map(saliency(model, x_adv, pred))

    def dist(m):
        n = m / m.sum((1, 2), keepdim=True)
        t = target / target.sum((1, 2), keepdim=True)
        return (n - t).pow(2).sum((1, 2))

    assert dist(after).mean() < dist(clean).mean()
    assert surrogate.beta == 10.0  # annealing restored the surrogate's beta


@pytest.mark.parametrize(
    "attack,kw",
    [
        (ifia_topk, {"k": 6}),
        (ifia_mass_center, {}),
        (manipulate, {"target_map": "fixed"}),
    ],
)
def test_batched_attack_equals_a_per_sample_loop(attack, kw):
    model = tiny_cnn(nn.ReLU)
    surrogate = smooth_surrogate(model, 5.0)
    x = torch.rand(5, 1, 6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with torch.no_grad():
        pred = model(x).argmax(1)
    maps = None
    if kw.get("target_map") == "fixed":
        maps = torch.rand(5, 6, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    common = {
        "epsilon": 0.1,
        "steps": 6,
        "step_size": 0.02,
        "seed": 0,
        **{k: v for k, v in kw.items() if k != "target_map"},
    }
    whole = attack(
        model,
        surrogate,
        x,
        pred,
        saliency,
        **common,
        **({"target_map": maps} if maps is not None else {}),
    )
    for i in range(5):
        one = attack(
            model,
            surrogate,
            x[i : i + 1],
            pred[i : i + 1],
            saliency,
            **common,
            **({"target_map": maps[i : i + 1]} if maps is not None else {}),
        )
        torch.testing.assert_close(one, whole[i : i + 1], rtol=0, atol=1e-12)


def test_random_with_samples_gives_that_many_seeded_draws_in_the_ball():
    from attrib_audit.attacks._common import Draws
    from attrib_audit.attacks.noise import random_noise

    x = torch.rand(3, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, 2)).eval()
    target = model(x).argmax(1)

    def draws(eps, seed):
        d = random_noise(model, model, x, target, epsilon=eps, samples=4, seed=seed)
        assert isinstance(d, Draws) and d.count == 4
        return list(d)

    a, b, c = draws(0.1, 1), draws(0.1, 1), draws(0.1, 2)
    assert len(a) == 4 and all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0]) and not torch.equal(a[0], a[1])
    for d in a:
        assert (d - x).abs().max() <= 0.1 + 1e-7 and d.min() >= 0 and d.max() <= 1
    assert all(torch.equal(d, x) for d in draws(0.0, 1))
