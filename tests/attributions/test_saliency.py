import pytest
import torch
from captum.attr import Saliency
from torch import nn

from attrib_audit.attributions import saliency


def test_matches_captum_saliency(relu_cnn, images):
    target = torch.tensor([0, 1, 2, 1])
    ours = saliency(relu_cnn, images, target)
    ref = Saliency(relu_cnn).attribute(images, target=target, abs=False)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5)


def test_linear_model_saliency_is_its_weight_row():
    torch.manual_seed(0)
    lin = nn.Sequential(nn.Flatten(), nn.Linear(12, 3)).double()
    x = torch.rand(5, 1, 3, 4, dtype=torch.float64)
    target = torch.tensor([0, 1, 2, 0, 2])
    expected = lin[1].weight[target].reshape(5, 1, 3, 4)
    torch.testing.assert_close(saliency(lin, x, target), expected, rtol=0, atol=0)


@pytest.mark.parametrize("explain", ["probability", "loss"])
def test_other_quantities_match_autograd(relu_cnn, images, explain):
    target = torch.tensor([2, 0, 1, 1])
    x = images.clone().requires_grad_(True)
    logits = relu_cnn(x)
    if explain == "probability":
        q = logits.softmax(1).gather(1, target[:, None]).sum()
    else:
        q = nn.functional.cross_entropy(logits, target, reduction="sum")
    (expected,) = torch.autograd.grad(q, x)
    torch.testing.assert_close(saliency(relu_cnn, images, target, explain=explain), expected)


def test_bad_target_shape_is_a_clear_error(relu_cnn, images):
    with pytest.raises(ValueError, match=r"target must have shape \(B,\)"):
        saliency(relu_cnn, images, torch.tensor([0]))


def test_model_state_and_param_grads_untouched(relu_cnn, images):
    relu_cnn.train()
    flags = [p.requires_grad for p in relu_cnn.parameters()]
    saliency(relu_cnn, images, torch.zeros(4, dtype=torch.long))
    assert relu_cnn.training
    assert [p.requires_grad for p in relu_cnn.parameters()] == flags
    assert all(p.grad is None for p in relu_cnn.parameters())
