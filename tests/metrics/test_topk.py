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
