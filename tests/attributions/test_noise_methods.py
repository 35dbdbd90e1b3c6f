import pytest
import torch
from captum.attr import NoiseTunnel, Saliency

from attrib_audit.attributions import saliency, smooth_grad, uniform_grad

TARGET = torch.tensor([0, 1, 2, 1])


def test_smooth_grad_matches_captum_noise_tunnel_with_the_same_noise(relu_cnn, images):
    n, std = 6, 0.2
    torch.manual_seed(11)
    ref = NoiseTunnel(Saliency(relu_cnn)).attribute(
        images, nt_type="smoothgrad", nt_samples=n, stdevs=std, target=TARGET, abs=False
    )
    # Captum draws its noise in one float32 call, each input's samples adjacent
    # (repeat_interleave); draw the same and lay it out as (n, B, ...)
    torch.manual_seed(11)
    noise = torch.normal(0, torch.tensor(std).repeat((images.shape[0] * n, *images.shape[1:])))
    noise = noise.reshape(images.shape[0], n, *images.shape[1:]).transpose(0, 1)
    ours = smooth_grad(relu_cnn, images, TARGET, noise=noise)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5)


def test_sigma_is_a_fraction_of_the_value_range(relu_cnn, images):
    a = smooth_grad(relu_cnn, images, TARGET, samples=5, sigma=0.1, seed=2)
    b = smooth_grad(
        relu_cnn, images * 2 - 1, TARGET, samples=5, sigma=0.05, seed=2, value_range=(-1.0, 1.0)
    )
    # same standard deviation (0.1) -> same noise draws; shifted inputs differ, but noise does not
    g = torch.Generator().manual_seed(2)
    noise = torch.randn((5, *images.shape), generator=g, dtype=images.dtype) * 0.1
    torch.testing.assert_close(a, smooth_grad(relu_cnn, images, TARGET, noise=noise))
    torch.testing.assert_close(b, smooth_grad(relu_cnn, images * 2 - 1, TARGET, noise=noise))


@pytest.mark.parametrize("fn,kw", [(smooth_grad, {"sigma": 0.0}), (uniform_grad, {"radius": 0.0})])
def test_one_zero_noise_sample_equals_saliency(relu_cnn, images, fn, kw):
    got = fn(relu_cnn, images, TARGET, samples=1, **kw)
    torch.testing.assert_close(got, saliency(relu_cnn, images, TARGET), rtol=0, atol=0)
    zero = torch.zeros((1, *images.shape), dtype=images.dtype)
    torch.testing.assert_close(
        fn(relu_cnn, images, TARGET, noise=zero), saliency(relu_cnn, images, TARGET), rtol=0, atol=0
    )


@pytest.mark.parametrize("fn", [smooth_grad, uniform_grad])
def test_seeded_and_chunked(relu_cnn, images, fn):
    a = fn(relu_cnn, images, TARGET, samples=7, seed=5)
    b = fn(relu_cnn, images, TARGET, samples=7, seed=5, max_batch=3)
    c = fn(relu_cnn, images, TARGET, samples=7, seed=6)
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(a, c)


def test_uniform_grad_is_the_mean_over_its_samples(relu_cnn, images):
    g = torch.Generator().manual_seed(0)
    r = 0.05
    noise = torch.rand((4, *images.shape), generator=g, dtype=images.dtype) * 2 * r - r
    naive = sum(saliency(relu_cnn, images + noise[i], TARGET) for i in range(4)) / 4
    torch.testing.assert_close(uniform_grad(relu_cnn, images, TARGET, noise=noise), naive)
    # the drawn noise stays inside the cube
    drawn = uniform_grad(relu_cnn, images, TARGET, samples=3, radius=r, seed=1)
    assert drawn.shape == images.shape
    g = torch.Generator().manual_seed(1)
    u = torch.rand((3, *images.shape), generator=g, dtype=images.dtype) * 2 * r - r
    assert u.abs().max() <= r
    torch.testing.assert_close(drawn, uniform_grad(relu_cnn, images, TARGET, noise=u))


@pytest.mark.parametrize("fn", [smooth_grad, uniform_grad])
def test_create_graph_is_differentiable(relu_cnn, images, fn):
    from attrib_audit.models import smooth_surrogate

    sur = smooth_surrogate(relu_cnn, beta=5.0)
    x = images.clone().requires_grad_(True)
    m = fn(sur, x, TARGET, samples=3, seed=0, create_graph=True)
    (g,) = torch.autograd.grad(m.abs().sum(), x)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
