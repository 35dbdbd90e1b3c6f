"""The smooth surrogate across torchvision's classification zoo (random weights): it builds,
nothing ReLU-like is left unreported, every activation is either replaced or smooth already,
max pooling is reported, and a second-order step through SM is finite and nonzero."""

import pytest
import torch
import torchvision
from torch import nn

from attrib_audit.attributions import saliency
from attrib_audit.models.surrogate import PIECEWISE, SMOOTH_ALREADY, find_relus, smooth_surrogate

ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.LeakyReLU, nn.PReLU, nn.Hardswish, nn.Hardsigmoid)


def _check(model: nn.Module, side: int, seed: int = 0) -> None:
    torch.manual_seed(seed)
    model = model.eval()
    with torch.no_grad():  # zero-initialised heads (ViT's) would make every map zero
        for p in model.parameters():
            if p.dim() > 1 and not p.any():
                nn.init.normal_(p, std=0.02)
    x = torch.rand(2, 3, side, side)
    surrogate = smooth_surrogate(model, 10.0)
    assert find_relus(surrogate, x) == [], "a ReLU-like function is left in the surrogate"
    kinds = {type(m) for m in surrogate.modules()}
    left = {k.__name__ for k in kinds if issubclass(k, ACTIVATIONS)}
    assert not left, f"activation modules left: {left}"
    unknown = {
        k.__name__
        for k in kinds
        if k.__module__.startswith("torch.nn.modules.activation")
        and not issubclass(k, SMOOTH_ALREADY)
        and k not in (nn.Softmax, nn.MultiheadAttention)
    }
    assert not unknown, f"activations neither replaced nor known to be smooth: {unknown}"
    pools = [m for m in model.modules() if isinstance(m, PIECEWISE)]
    assert len(surrogate.piecewise) == len(pools)
    with torch.no_grad():
        target = surrogate(x).argmax(1)
    xg = x.clone().requires_grad_(True)
    m = saliency(surrogate, xg, target, create_graph=True)
    (g,) = torch.autograd.grad(m.pow(2).sum(), xg)
    assert torch.isfinite(g).all() and g.abs().sum() > 0, "no second-order signal"


SMALL = {
    "resnet18": lambda: torchvision.models.resnet18(num_classes=10),
    "mobilenet_v3_small": lambda: torchvision.models.mobilenet_v3_small(num_classes=10),
    "mobilenet_v2": lambda: torchvision.models.mobilenet_v2(num_classes=10),
    "efficientnet_b0": lambda: torchvision.models.efficientnet_b0(num_classes=10),
    "squeezenet1_1": lambda: torchvision.models.squeezenet1_1(num_classes=10),
    "shufflenet_v2_x0_5": lambda: torchvision.models.shufflenet_v2_x0_5(num_classes=10),
    "mnasnet0_5": lambda: torchvision.models.mnasnet0_5(num_classes=10),
    "regnet_x_400mf": lambda: torchvision.models.regnet_x_400mf(num_classes=10),
    "tiny-vit": lambda: torchvision.models.VisionTransformer(
        image_size=32,
        patch_size=8,
        num_layers=2,
        num_heads=2,
        hidden_dim=32,
        mlp_dim=64,
        num_classes=10,
    ),
    "prelu-cnn": lambda: nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.PReLU(4), nn.MaxPool2d(2), nn.Flatten(), nn.LazyLinear(10)
    ),
}


@pytest.mark.parametrize("name", SMALL)
def test_surrogate_of_a_sample_of_the_zoo(name):
    model = SMALL[name]()
    if name == "prelu-cnn":
        model(torch.rand(1, 3, 32, 32))  # materialise the lazy layer
    _check(model, 32)


def test_functional_hard_activations_are_replaced():
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.w = nn.Parameter(torch.full((4,), 0.2))
            self.fc = nn.Linear(4 * 6 * 6, 3)

        def forward(self, x):
            h = self.conv(x)
            h = torch.nn.functional.hardswish(h) + torch.nn.functional.hardsigmoid(h)
            h = torch.nn.functional.prelu(h, self.w)
            return self.fc(h.flatten(1))

    _check(Functional(), 8)


def test_smooth_counterparts_approach_the_originals_as_beta_grows():
    from attrib_audit.models.surrogate import smooth_hardsigmoid, smooth_hardswish, smooth_prelu

    x = torch.linspace(-6, 6, 101, dtype=torch.float64)
    big, w = 1e4, torch.tensor([0.25], dtype=torch.float64)
    F = nn.functional
    pairs = [
        (smooth_hardsigmoid(x, big), F.hardsigmoid(x)),
        (smooth_hardswish(x, big), F.hardswish(x)),
        (smooth_prelu(x, big, w), F.prelu(x, w)),
    ]
    for smooth, exact in pairs:
        torch.testing.assert_close(smooth, exact, atol=1e-3, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("name", torchvision.models.list_models(module=torchvision.models))
def test_surrogate_of_every_torchvision_classifier(name):
    kwargs = {}
    if name.startswith("vit_"):  # a ViT is built for one size: the smallest, two patches a side
        kwargs["image_size"] = 2 * int(name.rsplit("_", 1)[1])
    model = torchvision.models.get_model(name, weights=None, num_classes=10, **kwargs)
    if hasattr(model, "aux_logits"):
        model.aux_logits = False
        model.AuxLogits = None
    _check(model, kwargs.get("image_size") or _smallest_side(model))


def _smallest_side(model: nn.Module) -> int:
    """The smallest of a few square sizes the model runs on."""
    model.eval()
    for side in (32, 64, 96, 128, 160, 224):
        try:
            with torch.no_grad():
                model(torch.rand(1, 3, side, side))
            return side
        except (RuntimeError, ValueError, AssertionError, TypeError):
            continue
    raise AssertionError("the model runs on none of the tried sizes")


# A sample of timm's families, one small member each, chosen for their activations: ReLU,
# ReLU6, SiLU, GELU, Hardswish/Hardsigmoid, LeakyReLU, Mish, PReLU-free, and timm's own
# activation classes (its create_act picks them by name).
TIMM_SAMPLE = {
    "resnet18": {},
    "efficientnet_b0": {},
    "tf_efficientnet_lite0": {},  # ReLU6
    "mobilenetv3_small_050": {},  # hard_swish, hard_sigmoid
    "lcnet_050": {},
    "ghostnet_050": {},
    "mixnet_s": {},
    "rexnet_100": {},
    "convnext_atto": {},  # GELU, LayerNorm
    "cspdarknet53": {},  # LeakyReLU, Mish
    "dla34": {},
    "regnetx_002": {},
    "repvgg_a0": {},
    "mobilevit_xxs": {},
    "nf_resnet26": {},  # GammaAct over functional activations
    "poolformer_s12": {},
    "vit_tiny_patch16_224": {"img_size": 32},
    "deit_tiny_patch16_224": {"img_size": 32},
    "levit_128s": {},  # Hardswish, a fixed 224 input
}


@pytest.mark.slow
@pytest.mark.parametrize("name", TIMM_SAMPLE)
def test_surrogate_of_a_sample_of_timm(name):
    timm = pytest.importorskip("timm")
    from timm.layers import activations

    kwargs = TIMM_SAMPLE[name]
    model = timm.create_model(name, pretrained=False, num_classes=10, **kwargs)
    side = kwargs.get("img_size") or _smallest_side(model)
    _check(model, side)
    own = {type(m) for m in smooth_surrogate(model, 10.0).modules()}
    own = {k.__name__ for k in own if k.__module__.startswith(activations.__name__)}
    assert own <= TIMM_SMOOTH, f"timm activations not known to be smooth: {own - TIMM_SMOOTH}"


# timm's own activation classes that compute smooth functions (timm/layers/activations*.py)
TIMM_SMOOTH = {"Swish", "SwishMe", "Mish", "MishMe", "Sigmoid", "Tanh", "GELU", "GELUTanh"}
