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


def test_kendall_chunked_and_scipy_paths_agree(monkeypatch):
    a, b = _maps(4, levels=5), _maps(5, levels=5)
    pairwise = kendall(a, b)
    monkeypatch.setattr(rank_module, "_PAIR_BUDGET", 50)  # many small chunks
    torch.testing.assert_close(kendall(a, b), pairwise, rtol=0, atol=1e-12)
    monkeypatch.setattr(rank_module, "PAIRWISE_LIMIT", 10)  # scipy per sample
    torch.testing.assert_close(kendall(a, b), pairwise, rtol=0, atol=1e-12)


def test_identity_and_reversal():
    a = _maps(6)
    torch.testing.assert_close(kendall(a, a), torch.ones(5, dtype=torch.float64))
    torch.testing.assert_close(spearman(a, a), torch.ones(5, dtype=torch.float64))
    torch.testing.assert_close(kendall(a, -a), -torch.ones(5, dtype=torch.float64))
    torch.testing.assert_close(spearman(a, -a), -torch.ones(5, dtype=torch.float64))


def test_constant_map_is_nan_like_scipy():
    a, c = _maps(7), torch.ones(5, 7, 9, dtype=torch.float64)
    assert torch.isnan(kendall(a, c)).all() and torch.isnan(spearman(a, c)).all()


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in shape"):
        kendall(torch.rand(2, 4, 4), torch.rand(2, 4, 5))
