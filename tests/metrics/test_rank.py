import numpy as np
import pytest
import torch
from scipy import stats

from attrib_audit.metrics import average_ranks, kendall, spearman
from attrib_audit.metrics import rank as rank_module


def _maps(seed, shape=(5, 7, 9), levels=None):
    g = torch.Generator().manual_seed(seed)
    if levels:  # few distinct values -> many ties
        return torch.randint(0, levels, shape, generator=g).double()
    return torch.rand(shape, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("levels", [None, 4, 2])
def test_kendall_and_spearman_equal_scipy_ties_included(levels):
    a, b = _maps(0, levels=levels), _maps(1, levels=levels)
    b = 0.5 * a + b  # correlated, so the statistics are not all near zero
    for i in range(a.shape[0]):
        fa, fb = a[i].flatten().numpy(), b[i].flatten().numpy()
        assert kendall(a, b)[i].item() == pytest.approx(
            stats.kendalltau(fa, fb).statistic, abs=1e-12
        )
        assert spearman(a, b)[i].item() == pytest.approx(
            stats.spearmanr(fa, fb).statistic, abs=1e-12
        )


def test_average_ranks_equal_scipy_rankdata():
    a = _maps(3, shape=(4, 50), levels=6)
    np.testing.assert_array_equal(
        average_ranks(a).numpy(), stats.rankdata(a.numpy(), axis=1, method="average")
    )


@pytest.mark.parametrize("levels", [None, 5])
def test_kendall_tensor_and_scipy_paths_agree(monkeypatch, levels):
    a, b = _maps(4, levels=levels), _maps(5, levels=levels)
    tensor = kendall(a, b)  # 63 pixels: the tensor form, a power-of-two pad included
    monkeypatch.setattr(rank_module, "SCIPY_ABOVE_ON_CPU", 10)  # scipy per sample
    torch.testing.assert_close(kendall(a, b), tensor, rtol=0, atol=1e-12)


def test_kendall_tensor_form_equals_scipy_at_image_sizes():
    """The merge sort's counts at 28x28 and 224x224 (many levels, padding, float32 maps with
    ties), against scipy on the same floats."""
    for shape in [(3, 28, 28), (2, 224, 224)]:
        g = torch.Generator().manual_seed(shape[1])
        a = torch.rand(shape, generator=g)
        b = (a + 0.3 * torch.rand(shape, generator=g)).round(decimals=2)  # ties in b
        got = rank_module._kendall_tensor(a.flatten(1), b.flatten(1))
        for i in range(shape[0]):
            want = stats.kendalltau(a[i].flatten().numpy(), b[i].flatten().numpy()).statistic
            assert got[i].item() == pytest.approx(want, abs=1e-12)


def test_inversions_equal_a_naive_count():
    v = _maps(8, shape=(4, 23), levels=6)
    naive = [
        sum(int(row[i] > row[j]) for i in range(len(row)) for j in range(i + 1, len(row)))
        for row in v.tolist()
    ]
    assert rank_module._inversions(v).tolist() == naive


def test_identity_and_reversal():
    a = _maps(6)
    torch.testing.assert_close(kendall(a, a), torch.ones(5, dtype=torch.float64))
    torch.testing.assert_close(spearman(a, a), torch.ones(5, dtype=torch.float64))
    torch.testing.assert_close(kendall(a, -a), -torch.ones(5, dtype=torch.float64))
    torch.testing.assert_close(spearman(a, -a), -torch.ones(5, dtype=torch.float64))


@pytest.mark.parametrize("shape", [(7, 9), (40, 40)])  # the tensor form and scipy's
def test_a_constant_map_keeps_no_order(shape):
    """scipy gives NaN; an attack that rectifies a Grad-CAM to zero has left no ranking, so
    0, not a value missing from the mean. Two constant maps stay NaN."""
    a, c = _maps(7, (5, *shape)), torch.ones(5, *shape, dtype=torch.float64)
    for corr in (kendall, spearman):
        assert torch.equal(corr(a, c), torch.zeros(5, dtype=torch.float64))
        assert torch.equal(corr(c, a), torch.zeros(5, dtype=torch.float64))
        assert torch.isnan(corr(c, 2 * c)).all()


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in shape"):
        kendall(torch.rand(2, 4, 4), torch.rand(2, 4, 5))
