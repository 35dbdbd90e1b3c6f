"""The sensitivity metrics against Quantus itself, on the same model, maps and noise; and the
adversarial search against the sampled maximum."""

import copy

import numpy as np
import pytest
import torch

from attrib_audit.attacks.noise import noise_draws, random_noise
from attrib_audit.attacks.sensitivity import ifia_sensitivity
from attrib_audit.attributions import saliency
from attrib_audit.metrics.sensitivity import (
    avg_sensitivity,
    local_lipschitz,
    max_sensitivity,
    over_draws,
    ris,
)
from attrib_audit.models import smooth_surrogate

quantus = pytest.importorskip("quantus")

DRAWS = 12
EPS = 0.05


@pytest.fixture(scope="module")
def case(digits_model, digits_data):
    model = copy.deepcopy(digits_model.module).eval()
    x = digits_data.x[:6].float()
    with torch.no_grad():
        y = model(x).argmax(1)
    draws = list(noise_draws(x, EPS, DRAWS, (0.0, 1.0), seed=3))
    with torch.no_grad():  # the comparison needs every draw to keep the prediction
        assert all(bool((model(d).argmax(1) == y).all()) for d in draws)
    return model, x, y, draws


def explain(model, inputs, targets, **kw):
    x = torch.as_tensor(inputs, dtype=torch.float32)
    t = torch.as_tensor(targets, dtype=torch.long)
    return saliency(model, x, t).detach().numpy()


def replaying(draws, per_sample: bool):
    """A Quantus perturb_func that hands out our draws in the order Quantus asks for them: a
    batch per step, or (batch_size=1) sample by sample, step by step."""
    flat = [d.reshape(d.shape[0], -1).numpy() for d in draws]
    if per_sample:
        order = iter([f[i : i + 1] for i in range(flat[0].shape[0]) for f in flat])
    else:
        order = iter(flat)

    def perturb(arr, indices, **kw):
        out = next(order)
        assert out.shape == arr.shape
        return out.astype(arr.dtype)

    return perturb


def ours(metric, model, x, y, draws, how):
    a = saliency(model, x, y).detach().double()
    per = []
    for d in draws:
        b = saliency(model, d, y).detach().double()
        per.append(
            metric(a, b, x=x.double(), x_adv=d.double())
            if metric in (ris, local_lipschitz)
            else metric(a, b)
        )
    return over_draws(torch.stack(per), how).numpy()


@pytest.mark.parametrize(
    "metric,how,quantus_metric,per_sample",
    [
        (max_sensitivity, "max", "MaxSensitivity", False),
        (avg_sensitivity, "mean", "AvgSensitivity", False),
        # Quantus scales Local Lipschitz maps by the batch's largest value: one sample a batch
        (local_lipschitz, "max", "LocalLipschitzEstimate", True),
        (ris, "max", "RelativeInputStability", False),
    ],
)
def test_equals_quantus_on_the_same_noise(case, metric, how, quantus_metric, per_sample):
    model, x, y, draws = case
    q = getattr(quantus, quantus_metric)(
        nr_samples=DRAWS,
        perturb_func=replaying(draws, per_sample),
        disable_warnings=True,
        display_progressbar=False,
    )
    expected = q(
        model=model,
        x_batch=x.numpy(),
        y_batch=y.numpy(),
        explain_func=explain,
        device="cpu",
        batch_size=1 if per_sample else len(x),
    )
    np.testing.assert_allclose(ours(metric, model, x, y, draws, how), expected, rtol=1e-5)


def test_a_draw_that_changed_the_prediction_is_left_out():
    v = torch.tensor([[1.0, 5.0], [torch.nan, 2.0], [3.0, torch.nan]])
    assert over_draws(v, "max").tolist() == [3.0, 5.0]
    assert over_draws(v, "mean").tolist() == [2.0, 3.5]
    assert torch.isnan(over_draws(torch.full((2, 1), torch.nan), "max")).all()


def test_the_search_is_never_below_the_sampled_maximum(case):
    model, x, y, _ = case
    surrogate = smooth_surrogate(model, 10.0)
    eps, seed = 0.1, 7
    draws = random_noise(model, surrogate, x, y, saliency, epsilon=eps, samples=DRAWS, seed=seed)
    sampled = ours(max_sensitivity, model, x, y, list(draws), "max")
    x_adv = ifia_sensitivity(
        model,
        surrogate,
        x,
        y,
        saliency,
        epsilon=eps,
        steps=5,
        step_size=eps / 4,
        samples=DRAWS,
        seed=seed,
    )
    searched = ours(max_sensitivity, model, x, y, [x_adv], "max")
    assert (searched >= sampled - 1e-7).all()
    assert (searched > sampled).mean() >= 0.5, "the steps improved on the draws for few samples"
    with torch.no_grad():
        assert (model(x_adv).argmax(1) == y).all()


def test_local_lipschitz_of_a_map_zeroed_is_the_whole_clean_map():
    """Quantus's normalisation gives NaN for a map of zeros; here it stays zeros, so an
    attack that zeroes the map moved it by the whole (scaled) clean map."""
    a = torch.rand(3, 1, 4, 4, dtype=torch.float64)
    x = torch.rand(3, 1, 4, 4, dtype=torch.float64)
    x_adv = x + 0.1
    scaled = a.flatten(1) / a.flatten(1).abs().amax(1, keepdim=True)
    want = scaled.norm(dim=1) / ((x - x_adv).flatten(1).norm(dim=1) + 1e-10)
    got = local_lipschitz(a, torch.zeros_like(a), x=x, x_adv=x_adv)
    torch.testing.assert_close(got, want)
