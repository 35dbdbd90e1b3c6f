"""Certified top-k pixels: the binomial bound against scipy, the radius against a closed form
on a linear model, and the certificate against an attack inside its radius."""

import copy

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from attrib_audit.attributions import saliency
from attrib_audit.certify import CertifyParams, certify_topk, check_radius, lower_bound
from attrib_audit.errors import SettingError
from attrib_audit.metrics.reduce import reduce_map
from attrib_audit.metrics.topk import topk_mask
from attrib_audit.params import build


@pytest.mark.parametrize("n", [10, 90])
def test_the_lower_bound_is_clopper_pearsons(n):
    level = 1e-3
    for c in range(n + 1):
        ci = stats.binomtest(c, n).proportion_ci(confidence_level=1 - 2 * level, method="exact")
        assert lower_bound(c, n, level) == pytest.approx(ci.low, rel=1e-9, abs=1e-15)


def linear_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).double().eval()


def test_a_linear_models_saliency_is_certified_at_the_closed_form_radius():
    """A linear model's saliency is its weight row whatever the noise, so every draw agrees:
    each pixel's bound is (alpha / N)^(1 / n) and its radius sigma * Phi^-1 of that."""
    model = linear_model()
    x = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    target = model(x).argmax(1)
    params = CertifyParams(sigma=0.5, samples=30, n0=5, alpha=0.01)
    cert = certify_topk(
        saliency, model, x, target, k=4, params=params, generator=torch.Generator().manual_seed(1)
    )
    radius = 0.5 * stats.norm.ppf((0.01 / 16) ** (1 / 25))
    np.testing.assert_allclose(cert.radius.numpy(), radius, rtol=1e-12)
    weights = model[1].weight.detach()[target].abs()
    assert torch.equal(cert.top, topk_mask(weights, 4))
    assert cert.certified_topk(radius * (1 - 1e-9)).tolist() == [1.0] * 3
    assert cert.certified_topk(radius).tolist() == [0.0] * 3  # within, not at, the radius
    assert params.reachable(16) == pytest.approx(radius)


def test_a_radius_beyond_reach_is_refused_before_the_work():
    params = build(CertifyParams, {"radius": 0.5}, owner="certify")
    with pytest.raises(SettingError, match="largest reachable radius"):
        check_radius(params, 784)
    with pytest.raises(SettingError, match="n0"):
        CertifyParams(samples=10, n0=10)


def smoothed_frequency(model, x, target, k, sigma, n, seed):
    """Per pixel, how often it is in the top-k of the saliency map under the noise."""
    g = torch.Generator().manual_seed(seed)
    hits = torch.zeros(x.shape[0], x[0].numel() // x.shape[1])
    for _ in range(n):
        noisy = x + sigma * torch.randn(x.shape, generator=g)
        m = reduce_map(saliency(model, noisy, target).detach(), "sum-abs").flatten(1)
        hits += topk_mask(m, k)
    return hits / n


def l2_attack(model, x, target, answer, k, sigma, radius, steps=20, draws=16):
    """Push the smoothed map's mass out of the certified answer's top-k pixels: projected
    gradient steps in the L2 ball, the expectation over the noise by sampling."""
    g = torch.Generator().manual_seed(5)
    mask = answer.reshape(x.shape[0], *x.shape[2:]).float()
    delta = torch.zeros_like(x)
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = 0
        for _ in range(draws):
            noisy = x + delta + sigma * torch.randn(x.shape, generator=g)
            m = reduce_map(saliency(model, noisy, target, create_graph=True), "sum-abs")
            m = m / m.sum((1, 2), keepdim=True)
            loss = loss + (m * mask).sum()
        (grad,) = torch.autograd.grad(loss, delta)
        step = grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12)[:, None, None, None]
        delta = delta.detach() - 0.25 * radius * step
        norm = delta.flatten(1).norm(dim=1).clamp_min(1e-12)[:, None, None, None]
        delta = delta * torch.clamp(radius / norm, max=1.0)
    return (x + delta).detach()


@pytest.mark.slow
def test_no_attack_inside_the_radius_breaks_a_certified_pixel(digits_model, digits_data):
    """Certified pixels keep their answer at the attacked point (judged with 2,000 draws and a
    one-sided test); the same attack does change uncertified ones, so it is not toothless."""
    from attrib_audit.models import smooth_surrogate

    model = smooth_surrogate(copy.deepcopy(digits_model.module).eval(), 10.0)
    x = digits_data.x[:6].float()
    with torch.no_grad():
        target = model(x).argmax(1)
    k, sigma = 8, 0.25
    params = CertifyParams(sigma=sigma, samples=300, n0=30, alpha=0.001)
    cert = certify_topk(
        saliency, model, x, target, k=k, params=params, generator=torch.Generator().manual_seed(2)
    )
    finite = cert.radius[torch.isfinite(cert.radius)]
    radius = 0.5 * float(finite.max())
    certified = cert.radius > radius
    assert certified.sum() > 20, "too few certified pixels for the test to mean anything"
    x_adv = l2_attack(model, x, target, cert.top, k, sigma, radius)
    assert (x_adv - x).flatten(1).norm(dim=1).max() <= radius * (1 + 1e-6)
    n = 2000
    freq = smoothed_frequency(model, x_adv, target, k, sigma, n, seed=9)
    agree = torch.where(cert.top, freq, 1 - freq)
    # a certified pixel breaks when its answer's frequency is significantly below 1/2
    upper = stats.beta.ppf(1 - 1e-4, agree.numpy() * n + 1, n - agree.numpy() * n)
    broken = torch.from_numpy(upper < 0.5) & certified
    assert int(broken.sum()) == 0
    flipped = (agree < 0.5) & ~certified
    assert int(flipped.sum()) > 0, "the attack changed no pixel at all"


def test_tied_pixels_are_in_no_draws_top_k():
    """A map rectified to zero outside three pixels ranks three; the zeros the index order
    would add to its top-5 in every draw are not certified, and a flat map certifies none."""

    def three_hot(model, x, target):
        m = torch.zeros_like(x).flatten(1)
        m[:, [2, 7, 11]] = torch.tensor([3.0, 2.0, 1.0], dtype=x.dtype)
        return m.view_as(x)

    def flat(model, x, target):
        return torch.zeros_like(x)

    x = torch.rand(2, 1, 4, 4, dtype=torch.float64)
    target = torch.zeros(2, dtype=torch.long)
    params = CertifyParams(sigma=0.5, samples=30, n0=5, alpha=0.01)
    cert = certify_topk(three_hot, None, x, target, k=5, params=params)
    assert cert.top.sum(1).tolist() == [3, 3] and cert.top[:, [2, 7, 11]].all()
    assert cert.certified_topk(0.0).tolist() == [0.6, 0.6]
    cert = certify_topk(flat, None, x, target, k=5, params=params)
    assert not cert.top.any() and cert.certified_topk(0.0).tolist() == [0.0, 0.0]
