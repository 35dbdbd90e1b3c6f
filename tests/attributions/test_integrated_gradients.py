import copy

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients
from captum.attr._utils.approximation_methods import approximation_parameters
from torch import nn

from attrib_audit.attributions import _common, integrated_gradients, quadrature, saliency
from attrib_audit.models import smooth_surrogate
from tests.conftest import tiny_cnn

TARGET = torch.tensor([0, 1, 2, 1])


@pytest.mark.parametrize(
    "method", ["riemann_left", "riemann_right", "riemann_middle", "gausslegendre"]
)
@pytest.mark.parametrize("steps", [7, 32])
def test_matches_captum(relu_cnn, images, method, steps):
    ours = integrated_gradients(relu_cnn, images, TARGET, steps=steps, method=method)
    ref = IntegratedGradients(relu_cnn).attribute(
        images, target=TARGET, n_steps=steps, method=method
    )
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5)


def test_trapezoid_weights_sum_to_one_unlike_captums():
    _, w = quadrature(10, "riemann_trapezoid")
    assert w.sum() == pytest.approx(1.0, abs=1e-15)
    assert w[0] == w[-1] == pytest.approx(1 / 18)
    step_sizes, _ = approximation_parameters("riemann_trapezoid")
    assert np.sum(step_sizes(10)) == pytest.approx(0.9)  # the 1/n bias the docstring describes


class Quadratic(nn.Module):
    """f_k(x) = sum_i c_ki x_i^2: its IG along a straight path has a closed form."""

    def __init__(self, c):
        super().__init__()
        self.c = c

    def forward(self, x):
        return (x.flatten(1) ** 2) @ self.c.T


@pytest.mark.parametrize("steps", [2, 5, 50])
def test_trapezoid_is_exact_on_a_closed_form(steps):
    # grad f along the path is linear in alpha, so the trapezoid rule is exact:
    # IG_i = c_yi (x_i^2 - b_i^2)
    g = torch.Generator().manual_seed(0)
    c = torch.randn(3, 12, generator=g, dtype=torch.float64)
    x = torch.rand(4, 1, 3, 4, generator=g, dtype=torch.float64)
    b = torch.rand(4, 1, 3, 4, generator=g, dtype=torch.float64)
    got = integrated_gradients(
        Quadratic(c), x, TARGET, steps=steps, baseline=b, method="riemann_trapezoid"
    )
    expected = c[TARGET].reshape(4, 1, 3, 4) * (x**2 - b**2)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def _completeness_gap(model, x, target, ig):
    """max over samples of |sum(IG) - (f(x) - f(0))| / |f(x) - f(0)|"""
    with torch.no_grad():
        fx = model(x).gather(1, target[:, None]).squeeze(1)
        fb = model(torch.zeros_like(x)).gather(1, target[:, None]).squeeze(1)
    total = ig.flatten(1).sum(1)
    return ((total - (fx - fb)).abs() / (fx - fb).abs()).max().item()


def test_completeness_gauss_legendre_on_a_smooth_model(smooth_cnn, images):
    ig = integrated_gradients(smooth_cnn, images, TARGET, steps=64, method="gausslegendre")
    assert _completeness_gap(smooth_cnn, images, TARGET, ig) < 1e-6


def test_completeness_trapezoid_on_a_relu_model(digits_model, digits_data):
    # A trained ReLU model on real digits: f(x) - f(0) is large for the predicted class, so
    # the relative gap measures the quadrature, not a near-zero denominator.
    model = copy.deepcopy(digits_model.module).double()
    x = digits_data.x[:64].double()
    target = model(x).argmax(1)
    ig = integrated_gradients(model, x, target, steps=256, method="riemann_trapezoid")
    assert _completeness_gap(model, x, target, ig) < 1e-2


def test_linear_model_is_exact():
    torch.manual_seed(0)
    lin = nn.Sequential(nn.Flatten(), nn.Linear(12, 3)).double()
    x = torch.rand(4, 1, 3, 4, dtype=torch.float64)
    b = torch.rand(4, 1, 3, 4, dtype=torch.float64)
    w = lin[1].weight[TARGET].reshape(4, 1, 3, 4)
    for method in ("riemann_trapezoid", "riemann_left", "gausslegendre"):
        got = integrated_gradients(lin, x, TARGET, steps=9, baseline=b, method=method)
        torch.testing.assert_close(got, (x - b) * w, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("method", ["riemann_trapezoid", "gausslegendre", "riemann_middle"])
def test_folded_batch_equals_a_naive_loop_over_steps(relu_cnn, images, method):
    steps = 11
    alphas, weights = quadrature(steps, method)
    naive = torch.zeros_like(images)
    for a, w in zip(alphas, weights, strict=True):
        naive += w * saliency(relu_cnn, a * images, TARGET)
    naive *= images
    got = integrated_gradients(relu_cnn, images, TARGET, steps=steps, method=method)
    torch.testing.assert_close(got, naive, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("max_batch", [None, 1, 3, 7, 1000])
def test_chunking_changes_nothing(relu_cnn, images, max_batch, monkeypatch):
    whole = integrated_gradients(relu_cnn, images, TARGET, steps=10, max_batch=0)
    if max_batch is None:
        monkeypatch.setitem(_common.AUTO_CHUNK_ELEMENTS, "cpu", 6 * images[0].numel() + 5)
        monkeypatch.setattr(_common, "MIN_ROWS", 1)
        assert _common.auto_max_batch(relu_cnn, images.repeat(10, 1, 1, 1)) == 6
    chunked = integrated_gradients(relu_cnn, images, TARGET, steps=10, max_batch=max_batch)
    torch.testing.assert_close(chunked, whole, rtol=1e-12, atol=1e-12)


def test_auto_chunk_size_and_bad_sizes(images, relu_cnn):
    points = images.repeat(10, 1, 1, 1)
    rows = _common.AUTO_CHUNK_ELEMENTS["cpu"] // images[0].numel()
    assert _common.auto_max_batch(relu_cnn, points) == max(_common.MIN_ROWS, rows)
    with pytest.raises(ValueError, match="max_batch must be >= 0"):
        integrated_gradients(relu_cnn, images, TARGET, steps=3, max_batch=-1)


def test_baselines():
    torch.manual_seed(0)
    lin = nn.Sequential(nn.Flatten(), nn.Linear(64, 3)).double()
    x = torch.rand(4, 1, 8, 8, dtype=torch.float64)
    w = lin[1].weight[TARGET].reshape(4, 1, 8, 8)
    blur = integrated_gradients(lin, x, TARGET, baseline="blur", steps=4)
    from attrib_audit.attributions import make_baseline

    b = make_baseline(x, "blur")
    assert b.shape == x.shape and not torch.equal(b, x)
    torch.testing.assert_close(blur, (x - b) * w)
    u1 = integrated_gradients(lin, x, TARGET, baseline="uniform", seed=3, value_range=(0, 1))
    u2 = integrated_gradients(lin, x, TARGET, baseline="uniform", seed=3, value_range=(0, 1))
    torch.testing.assert_close(u1, u2, rtol=0, atol=0)
    const = integrated_gradients(lin, x, TARGET, baseline=0.5, steps=3)
    torch.testing.assert_close(const, (x - 0.5) * w)
    with pytest.raises(ValueError, match="baseline must be one of"):
        integrated_gradients(lin, x, TARGET, baseline="black")


def test_unknown_method_names_the_valid_ones(relu_cnn, images):
    with pytest.raises(ValueError, match="gausslegendre"):
        integrated_gradients(relu_cnn, images, TARGET, method="simpson")


def test_create_graph_gradcheck_and_gradgradcheck_through_the_surrogate():
    sur = smooth_surrogate(tiny_cnn(nn.ReLU), beta=5.0)
    x = torch.rand(2, 1, 6, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    target = torch.tensor([0, 2])

    def sm(inp):
        return saliency(sur, inp, target, create_graph=True)

    def ig(inp):
        return integrated_gradients(sur, inp, target, steps=4, create_graph=True, max_batch=5)

    for fn in (sm, ig):
        inp = x.clone().requires_grad_(True)
        assert torch.autograd.gradcheck(fn, (inp,))
        assert torch.autograd.gradgradcheck(fn, (inp,))
