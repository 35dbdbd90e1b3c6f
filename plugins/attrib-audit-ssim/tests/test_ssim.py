import math

import pytest
import torch
from attrib_audit_ssim import C1, C2, ssim

from attrib_audit.testing import check_metric


def test_honours_the_metric_contract():
    check_metric(ssim)


def _naive(a, b, side=3):
    """SSIM with a uniform side x side window, straight from Wang et al.'s formula."""
    out = []
    for x, y in zip(a, b, strict=True):
        x, y = x.abs() / x.abs().max(), y.abs() / y.abs().max()
        vals = []
        for i in range(x.shape[0] - side + 1):
            for j in range(x.shape[1] - side + 1):
                p, q = (
                    x[i : i + side, j : j + side].flatten(),
                    y[i : i + side, j : j + side].flatten(),
                )
                mp, mq = p.mean(), q.mean()
                vp, vq = ((p - mp) ** 2).mean(), ((q - mq) ** 2).mean()
                cov = ((p - mp) * (q - mq)).mean()
                vals.append(
                    ((2 * mp * mq + C1) * (2 * cov + C2)) / ((mp**2 + mq**2 + C1) * (vp + vq + C2))
                )
        out.append(torch.stack(vals).mean())
    return torch.stack(out)


def test_matches_the_formula_with_a_flat_window():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(3, 6, 6, generator=g, dtype=torch.float64)
    b = torch.rand(3, 6, 6, generator=g, dtype=torch.float64)
    # a huge sigma makes the Gaussian window flat
    torch.testing.assert_close(ssim(a, b, window=3, sigma=1e6), _naive(a, b), rtol=1e-9, atol=1e-12)


def test_identity_scale_and_shift():
    a = torch.rand(2, 10, 10, dtype=torch.float64)
    torch.testing.assert_close(ssim(a, a), torch.ones(2, dtype=torch.float64))
    torch.testing.assert_close(ssim(a, 3 * a), torch.ones(2, dtype=torch.float64))  # scale-free
    moved = torch.zeros(1, 10, 10, dtype=torch.float64)
    moved[0, 2, 2] = 1
    far = moved.roll((5, 5), dims=(1, 2))
    assert ssim(moved, far).item() < 0.5 and not math.isnan(ssim(moved, far).item())


def test_bad_shapes():
    with pytest.raises(ValueError, match="shape"):
        ssim(torch.rand(2, 4, 4), torch.rand(2, 4, 5))
