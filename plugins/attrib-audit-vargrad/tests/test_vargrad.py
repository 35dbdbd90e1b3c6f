import torch
from attrib_audit_vargrad import vargrad
from torch import nn

from attrib_audit.attributions import saliency, smooth_grad
from attrib_audit.testing import check_method, tiny_model


def test_honours_the_method_contract():
    check_method(vargrad, samples=4)


def test_one_sample_and_a_linear_model_have_zero_variance():
    model = tiny_model()
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    t = torch.tensor([0, 1])
    assert torch.equal(vargrad(model, x, t, samples=1, seed=0), torch.zeros_like(x))
    lin = nn.Sequential(nn.Flatten(), nn.Linear(192, 4)).double()
    assert vargrad(lin, x, t, samples=5, seed=0).abs().max() < 1e-24


def test_is_the_variance_of_the_gradients_smoothgrad_averages():
    model = tiny_model()
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    t = torch.tensor([2, 3])
    noise = 0.1 * torch.randn(
        (6, *x.shape), dtype=x.dtype, generator=torch.Generator().manual_seed(0)
    )
    grads = torch.stack([saliency(model, x + noise[i], t) for i in range(6)])
    torch.testing.assert_close(vargrad(model, x, t, noise=noise), grads.var(0, unbiased=False))
    torch.testing.assert_close(smooth_grad(model, x, t, noise=noise), grads.mean(0))


def test_registered_by_entry_point_when_installed():
    from importlib import metadata

    import pytest

    if not any(ep.name == "vargrad" for ep in metadata.entry_points(group="attrib_audit.methods")):
        pytest.skip("attrib-audit-vargrad is not installed (pip install -e .)")
    check_method("vargrad", samples=4)
