import math

import torch

from attrib_audit.metrics import center_of_mass, com_dislocation, cosine_distance, reduce_map


def test_center_of_mass_of_a_one_hot_map_is_that_pixel():
    a = torch.zeros(3, 7, 5)
    a[0, 2, 4] = 1.0
    a[1, 6, 0] = 3.0
    a[2, 0, 0] = -2.0  # mass is absolute
    torch.testing.assert_close(
        center_of_mass(a), torch.tensor([[2.0, 4.0], [6.0, 0.0], [0.0, 0.0]])
    )


def test_dislocation_is_the_distance_between_centers():
    a, b = torch.zeros(1, 8, 8), torch.zeros(1, 8, 8)
    a[0, 1, 1] = 1
    b[0, 4, 5] = 2
    assert com_dislocation(a, b).item() == 5.0
    assert com_dislocation(a, a).item() == 0.0


def test_empty_map_sits_in_the_middle():
    torch.testing.assert_close(center_of_mass(torch.zeros(1, 5, 9)), torch.tensor([[2.0, 4.0]]))


def test_cosine_distance():
    a = torch.rand(4, 2, 3, 3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(cosine_distance(a, a), torch.zeros(4), atol=1e-6, rtol=0)
    torch.testing.assert_close(cosine_distance(a, -a), 2 * torch.ones(4))
    e1, e2 = torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 1.0]])
    assert cosine_distance(e1, e2).item() == torch.tensor(1 - 1 / math.sqrt(2)).item()


def test_reductions():
    a = torch.tensor([[[[1.0]], [[-2.0]], [[2.0]]]])  # (1, 3, 1, 1)
    assert reduce_map(a, "sum-abs").item() == 5.0
    assert reduce_map(a, "sum").item() == 1.0
    assert reduce_map(a, "l2").item() == 3.0
