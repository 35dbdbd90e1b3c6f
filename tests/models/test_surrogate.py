import warnings

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from attrib_audit.models import find_relus, smooth_surrogate, surrogate_agreement
from tests.conftest import tiny_cnn


class FunctionalReLU(nn.Module):
    """ReLUs only as calls inside forward: F.relu, torch.relu, Tensor.relu, in-place relu_."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.c1 = nn.Conv2d(1, 4, 3, padding=1)
        self.c2 = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 36, 3)

    def forward(self, x):
        x = F.relu(self.c1(x))
        x = torch.relu(self.c2(x)) + self.c2(x).relu()
        y = self.c2(x)
        y.relu_()  # return value ignored: the in-place write must happen
        return self.fc(F.leaky_relu(y, 0.1).flatten(1))


class Inplace(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(
            nn.Conv2d(1, 4, 3),
            nn.ReLU(inplace=True),
            nn.Conv2d(4, 4, 3),
            nn.ReLU6(inplace=True),
            nn.Flatten(),
            nn.Linear(4 * 2 * 2, 3),
            nn.Hardtanh(-2, 2),
        )

    def forward(self, x):
        return self.body(x)


def _x(shape=(4, 1, 6, 6), seed=0):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def _converted_onnx(tmp_path):
    from attrib_audit.models import onnx_graph

    model = tiny_cnn(dtype=torch.float32)
    path = tmp_path / "m.onnx"
    batch = {0: torch.export.Dim("batch", min=1)}
    torch.onnx.export(
        model, (_x(),), str(path), dynamo=True, dynamic_shapes=(batch,), verbose=False
    )
    graph, _ = onnx_graph.load(path)
    return onnx_graph.convert(onnx_graph.normalise(graph))


@pytest.mark.parametrize(
    "make,shape",
    [
        (FunctionalReLU, (4, 1, 6, 6)),
        (Inplace, (4, 1, 6, 6)),
        (lambda: torchvision.models.resnet18(num_classes=3).eval(), (2, 3, 32, 32)),
        ("onnx", (4, 1, 6, 6)),
    ],
)
def test_surrogate_has_no_relu_and_the_original_keeps_its(make, shape, tmp_path):
    model = _converted_onnx(tmp_path) if make == "onnx" else make()
    model.eval()
    x = _x(shape)
    before = find_relus(model, x)
    assert before, "the original must apply ReLUs"
    with torch.no_grad():
        ref = model(x).clone()
    sur = smooth_surrogate(model, beta=10.0)
    assert find_relus(sur, x) == []
    assert find_relus(model, x) == before  # the original is untouched
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref)
    agreement = surrogate_agreement(model, sur, x)
    assert 0.0 <= agreement.prediction_agreement <= 1.0
    assert -1.0 <= agreement.map_cosine <= 1.0 and agreement.n == shape[0]


@pytest.mark.parametrize("make", [FunctionalReLU, Inplace, lambda: tiny_cnn(dtype=torch.float32)])
def test_surrogate_logits_approach_the_model_as_beta_grows(make):
    model = make().eval()
    x = _x()
    with torch.no_grad():
        ref = model(x)
        gaps = [
            (smooth_surrogate(model, beta)(x) - ref).abs().max().item()
            for beta in (1.0, 10.0, 100.0, 1000.0)
        ]
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] < 1e-2 * max(1.0, gaps[0])


def test_smooth_counterparts_converge_pointwise():
    from attrib_audit.models.surrogate import smooth_hardtanh, smooth_leaky_relu, smooth_relu

    x = torch.linspace(-8, 8, 401, dtype=torch.float64)
    beta = 1e3
    torch.testing.assert_close(smooth_relu(x, beta), F.relu(x), atol=1e-3, rtol=0)
    torch.testing.assert_close(smooth_hardtanh(x, beta, 0.0, 6.0), F.relu6(x), atol=1e-3, rtol=0)
    torch.testing.assert_close(
        smooth_leaky_relu(x, beta, 0.2), F.leaky_relu(x, 0.2), atol=1e-3, rtol=0
    )


def test_surrogate_has_a_nonzero_input_hessian_and_passes_gradgradcheck():
    model = tiny_cnn(nn.ReLU)
    sur = smooth_surrogate(model, beta=4.0)
    x = _x((1, 1, 6, 6)).double().requires_grad_(True)

    def logit(inp):
        return sur(inp)[:, 0]

    assert torch.autograd.gradgradcheck(logit, (x,))
    (g,) = torch.autograd.grad(logit(x).sum(), x, create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), x)
    assert h.abs().sum() > 0
    # the ReLU model's input Hessian is zero: why attacks need the surrogate
    (g0,) = torch.autograd.grad(model(x)[:, 0].sum(), x, create_graph=True)
    h0 = torch.autograd.grad(g0.sum(), x, allow_unused=True)[0] if g0.requires_grad else None
    assert h0 is None or h0.abs().sum() == 0


def test_torchscript_relus_are_reported_not_hidden():
    scripted = torch.jit.script(tiny_cnn(dtype=torch.float32))
    wrapper = nn.Sequential(scripted)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sur = smooth_surrogate(wrapper, beta=10.0)
    assert sur.unreplaced and all("TorchScript" in u for u in sur.unreplaced)
    assert any("could not be made smooth" in str(w.message) for w in caught)


def test_bad_beta():
    with pytest.raises(ValueError, match="beta"):
        smooth_surrogate(tiny_cnn(), beta=0.0)
