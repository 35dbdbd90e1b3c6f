"""LENS metrics against naive re-implementations of their definitions (pixel loops, scipy)."""

import numpy as np
import pytest
import torch
from scipy import stats

from attrib_audit.metrics import topk_intersection
from attrib_audit.metrics.locality import (
    diverse_topk,
    lens_kendall,
    lens_spearman,
    lens_topk,
    topk_div,
    window_max,
)


def maps(seed=0, b=3, h=9, w=7, ties=False):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(b, h, w, generator=g, dtype=torch.float64)
    return (a * 4).round() / 4 if ties else a


def rectified(seed=0):
    """Distinct values above a floor of tied zeros (about 12 of 63 pixels positive), as a
    Grad-CAM."""
    return torch.relu(maps(seed) - 0.8)


def naive_topk(m: np.ndarray, k: int) -> set:
    """The pixels above the (k+1)-th largest value: ties at the k-th are in no top-k."""
    if k >= m.size:
        return set(range(m.size))
    kth = sorted(m.flat, reverse=True)[k]
    return {i for i in range(m.size) if m.flat[i] > kth}


def naive_near(i: int, j: int, shape, w: int) -> bool:
    (ri, ci), (rj, cj) = divmod(i, shape[1]), divmod(j, shape[1])
    return abs(ri - rj) <= w and abs(ci - cj) <= w


def naive_kept(clean: set, other: set, shape, w: int) -> float:
    kept = sum(any(naive_near(i, j, shape, w) for j in other) for i in clean)
    return kept / len(clean) if clean else float("nan")


def naive_diverse(m: np.ndarray, k: int, w: int) -> set:
    """Greedy from the largest (ties by index), skipping the window of each chosen pixel and
    every pixel at the map's smallest value."""
    chosen: list[int] = []
    for i in sorted(range(m.size), key=lambda i: (-m.flat[i], i)):
        if len(chosen) == k:
            break
        if m.flat[i] > m.min() and not any(naive_near(i, j, m.shape, w) for j in chosen):
            chosen.append(i)
    return set(chosen)


def naive_window_max(m: np.ndarray, w: int) -> np.ndarray:
    h, wd = m.shape
    return np.array(
        [
            [m[max(0, r - w) : r + w + 1, max(0, c - w) : c + w + 1].max() for c in range(wd)]
            for r in range(h)
        ]
    )


@pytest.mark.parametrize("w", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 6, 20])
@pytest.mark.parametrize("make", [maps, rectified])
def test_lens_topk_matches_the_definition(w, k, make):
    a, b = make(0), make(1)
    got = lens_topk(a, b, k=k, neighbourhood=w)
    for i in range(a.shape[0]):
        ta, tb = naive_topk(a[i].numpy(), k), naive_topk(b[i].numpy(), k)
        assert got[i].item() == pytest.approx(naive_kept(ta, tb, a.shape[1:], w))


def test_neighbourhood_zero_is_the_topk_intersection():
    a, b = maps(2), maps(3)
    torch.testing.assert_close(
        lens_topk(a, b, k=10, neighbourhood=0), topk_intersection(a, b, k=10)
    )


def test_a_map_shifted_by_one_pixel_keeps_its_interior_peaks():
    a = torch.zeros(1, 12, 12, dtype=torch.float64)
    a[0, 3:9, 3:9] = torch.rand(6, 6, generator=torch.Generator().manual_seed(0)) + 1
    b = torch.roll(a, shifts=1, dims=2)
    assert topk_intersection(a, b, k=10).item() < 0.5
    assert lens_topk(a, b, k=10, neighbourhood=1).item() == 1.0
    assert lens_spearman(a, b).item() > 0.8
    assert lens_spearman(a, b).item() > stats.spearmanr(a.flatten(), b.flatten())[0]


@pytest.mark.parametrize("w", [0, 1, 2])
@pytest.mark.parametrize("make", [maps, rectified, lambda seed: maps(seed, ties=True)])
def test_diverse_topk_is_the_greedy_choice(w, make):
    a = make(4)
    got = diverse_topk(a, 8, w)
    for i in range(a.shape[0]):
        want = naive_diverse(a[i].numpy(), 8, w)
        assert set(torch.nonzero(got[i].flatten()).flatten().tolist()) == want


def test_diverse_topk_stops_when_the_image_has_no_room():
    a = maps(5, b=1, h=4, w=4)
    assert diverse_topk(a, 50, 1).sum().item() == len(naive_diverse(a[0].numpy(), 50, 1)) < 50


@pytest.mark.parametrize("w", [1, 2])
def test_topk_div_matches_the_definition(w):
    a, b = maps(6), maps(7)
    got = topk_div(a, b, k=5, neighbourhood=w)
    for i in range(a.shape[0]):
        da, db = naive_diverse(a[i].numpy(), 5, w), naive_diverse(b[i].numpy(), 5, w)
        assert got[i].item() == pytest.approx(naive_kept(da, db, a.shape[1:], w))


@pytest.mark.parametrize("w", [0, 1, 2])
def test_window_max_matches_the_definition(w):
    a = maps(8)
    for i in range(a.shape[0]):
        np.testing.assert_array_equal(
            window_max(a, w)[i].numpy(), naive_window_max(a[i].numpy(), w)
        )


@pytest.mark.parametrize("ties", [False, True])
def test_lens_rank_correlations_are_scipy_on_the_pooled_maps(ties):
    a, b = maps(9, ties=ties), maps(10, ties=ties)
    rho, tau = lens_spearman(a, b, neighbourhood=1), lens_kendall(a, b, neighbourhood=1)
    for i in range(a.shape[0]):
        pa = naive_window_max(a[i].numpy(), 1).ravel()
        pb = naive_window_max(b[i].numpy(), 1).ravel()
        assert rho[i].item() == pytest.approx(stats.spearmanr(pa, pb)[0])
        assert tau[i].item() == pytest.approx(stats.kendalltau(pa, pb)[0])


def test_tied_pixels_are_in_no_lens_or_diverse_top_k():
    a = torch.zeros(1, 6, 6, dtype=torch.float64)
    a[0, 0, 0], a[0, 5, 5] = 2.0, 1.0
    b = a.clone()
    b[0, 5, 5] = 0.0
    assert lens_topk(a, b, k=10).item() == 0.5  # the zeros tied below are not kept pixels
    assert diverse_topk(a, k=10, w=1).sum().item() == 2
    plateau = torch.zeros(1, 6, 6)
    plateau[0, 2:4, 2:4] = 1.0  # a tie at the top is a shift, not a floor: one pixel chosen
    assert diverse_topk(plateau, k=10, w=1).sum().item() == 1
    assert topk_div(a, b, k=10).item() == 0.5
