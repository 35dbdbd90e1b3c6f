import numpy as np
import pytest

from attrib_audit.metrics import auc_log2, summarize


def test_auc_of_a_constant_curve_is_that_constant():
    assert auc_log2([2 / 255, 4 / 255, 8 / 255, 16 / 255], [0.7] * 4) == pytest.approx(0.7)


def test_auc_of_a_linear_curve_in_log2_is_its_midpoint():
    eps = [1.0, 2.0, 4.0, 8.0]
    vals = [np.log2(e) for e in eps]  # 0..3
    assert auc_log2(eps, vals) == pytest.approx(1.5)
    assert auc_log2(eps[::-1], vals[::-1]) == pytest.approx(1.5)  # order does not matter


@pytest.mark.parametrize("eps", [[0.1], [0.0, 0.1], [0.1, 0.1]])
def test_auc_needs_two_positive_distinct_epsilons(eps):
    with pytest.raises(ValueError):
        auc_log2(eps, [1.0] * len(eps))


def test_summary_is_seeded_and_brackets_the_mean():
    v = np.random.default_rng(0).normal(0.5, 0.1, size=200)
    s1, s2 = summarize(v, seed=3), summarize(v, seed=3)
    assert s1 == s2
    assert s1.mean == pytest.approx(v.mean()) and s1.median == pytest.approx(np.median(v))
    assert s1.ci95[0] < s1.mean < s1.ci95[1]
    # the percentile interval of the mean is about +-1.96 standard errors wide
    se = v.std(ddof=1) / np.sqrt(v.size)
    assert s1.ci95[1] - s1.ci95[0] == pytest.approx(2 * 1.96 * se, rel=0.15)


def test_summary_degenerate_cases():
    s = summarize([0.3])
    assert s.ci95 == (0.3, 0.3) and s.n == 1
    s = summarize([0.2, float("nan"), 0.4])
    assert s.n == 2 and s.mean == pytest.approx(0.3)
    assert np.isnan(summarize([]).mean)
