"""Grad-CAM against Captum's LayerGradCam, its second order by float64 gradcheck, and its
layer choice."""

import pytest
import torch
from captum.attr import LayerAttribution, LayerGradCam
from torch import nn

from attrib_audit.attributions import grad_cam
from attrib_audit.attributions.gradcam import find_layer
from attrib_audit.errors import SettingError
from attrib_audit.models import smooth_surrogate
from tests.conftest import TinyCNN, tiny_cnn


def _x(b=5, c=1, side=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, c, side, side, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("layer", [None, "net.0"])
def test_the_channel_sum_equals_captums_layer_gradcam_upsampled_bilinearly(layer):
    model = tiny_cnn()
    x = _x()
    with torch.no_grad():
        target = model(x).argmax(1)
    conv = model.net[2] if layer is None else model.net[0]  # None: the last convolution
    cam = LayerGradCam(model, conv).attribute(x, target=target, relu_attributions=True)
    want = LayerAttribution.interpolate(cam, (6, 6), interpolate_mode="bilinear")
    got = grad_cam(model, x, target, layer=layer)
    assert got.shape == x.shape
    torch.testing.assert_close(got.sum(1, keepdim=True), want, rtol=1e-10, atol=1e-12)
    assert (got >= 0).all() and got.abs().sum() > 0


def test_chunks_give_the_whole_batch_map():
    model, x = tiny_cnn(), _x(b=7)
    target = torch.arange(7) % 3
    torch.testing.assert_close(
        grad_cam(model, x, target, max_batch=2), grad_cam(model, x, target, max_batch=0)
    )
    with pytest.raises(ValueError, match="max_batch must be >= 0"):
        grad_cam(model, x, target, max_batch=-1)  # the chunking rule every method shares


def test_second_order_through_the_smooth_surrogate_by_float64_gradcheck():
    surrogate = smooth_surrogate(tiny_cnn(), 10.0)
    x = _x(b=2).requires_grad_(True)
    target = torch.tensor([0, 2])

    def cam(z):
        return grad_cam(surrogate, z, target, create_graph=True)

    assert torch.autograd.gradcheck(cam, (x,), eps=1e-6, atol=1e-6)
    assert torch.autograd.gradgradcheck(cam, (x,), eps=1e-6, atol=1e-5)


def test_a_wrapper_prefix_may_be_left_out_of_the_layer_name():
    wrapped = nn.Sequential()
    wrapped.add_module("inner", TinyCNN().double())
    assert find_layer(wrapped, "net.0")[0] == "inner.net.0"
    assert find_layer(wrapped, None)[0] == "inner.net.2"


@pytest.mark.parametrize(
    "layer, message",
    [("net.9", "names no module"), ("net.5", "Grad-CAM needs a layer with \\(B, K, h, w\\)")],
)
def test_a_bad_layer_is_a_setting_error(layer, message):
    model, x = tiny_cnn(), _x()
    with pytest.raises(SettingError, match=message) as err:
        grad_cam(model, x, torch.zeros(5, dtype=torch.long), layer=layer)
    assert err.value.field == "method_params.gradcam.layer"


def test_a_model_without_a_convolution_needs_a_layer():
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(36, 3)).double()
    with pytest.raises(SettingError, match="no nn.Conv2d"):
        grad_cam(mlp, _x(), torch.zeros(5, dtype=torch.long))


def test_an_audit_with_a_missing_layer_stops_before_any_attack(tmp_path):
    from typer.testing import CliRunner

    from attrib_audit.cli import app
    from attrib_audit.models import sample_model

    out = tmp_path / "report"
    args = ["audit", str(sample_model("digits-cnn", "pt")), "--data", "digits", "--samples", "8"]
    args += ["--methods", "sm,gradcam", "--method-param", "gradcam.layer=nope", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: --method-param gradcam.layer 'nope' names no module; its convolutions: 0, 2"
    )
    assert not out.exists()
