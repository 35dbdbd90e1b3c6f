import pytest
import torch

from attrib_audit.metrics import topk_intersection


def _naive(a, b, k):
    out = []
    for ra, rb in zip(a.flatten(1), b.flatten(1), strict=True):
        sa = set(sorted(range(ra.numel()), key=lambda i: -ra[i].item())[:k])
        sb = set(sorted(range(rb.numel()), key=lambda i: -rb[i].item())[:k])
        out.append(len(sa & sb) / k)
    return torch.tensor(out, dtype=a.dtype)


@pytest.mark.parametrize("k", [1, 5, 20, 63])
def test_matches_a_naive_set_implementation(k):
    g = torch.Generator().manual_seed(k)
    a = torch.rand(6, 8, 8, generator=g, dtype=torch.float64)
    b = a + 0.3 * torch.rand(6, 8, 8, generator=g, dtype=torch.float64)
    torch.testing.assert_close(topk_intersection(a, b, k=k), _naive(a, b, k))


def test_a_map_with_itself_is_one_and_disjoint_is_zero():
    a = torch.rand(3, 10, 10, generator=torch.Generator().manual_seed(0))
    assert torch.equal(topk_intersection(a, a, k=17), torch.ones(3))
    assert torch.equal(topk_intersection(a, -a, k=10), torch.zeros(3))


def test_k_is_capped_to_the_number_of_pixels():
    a = torch.rand(2, 3, 3)
    assert torch.equal(topk_intersection(a, torch.rand(2, 3, 3), k=100), torch.ones(2))


def test_bad_k():
    with pytest.raises(ValueError, match="k must be >= 1"):
        topk_intersection(torch.rand(1, 2, 2), torch.rand(1, 2, 2), k=0)


def test_tied_pixels_are_in_no_top_k():
    """A map rectified to zero outside three pixels ranks three: the zeros that the index
    order would add to its top-5, in the same places before and after, are not counted kept."""
    a = torch.zeros(1, 4, 4, dtype=torch.float64)
    a[0, 0, :3] = torch.tensor([3.0, 2.0, 1.0])
    b = a.clone()
    b[0, 0, 2] = 0.0  # one of the three drops to the floor
    assert topk_intersection(a, a, k=5).item() == 1.0
    assert topk_intersection(a, b, k=5).item() == pytest.approx(2 / 3)
    assert topk_intersection(a, b, k=2).item() == 1.0  # no tie at the 2nd value
    assert topk_intersection(torch.zeros(1, 4, 4), a, k=5).isnan().all()  # a flat map: none
