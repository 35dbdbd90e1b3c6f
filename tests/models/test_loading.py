import hashlib

import onnx
import pytest
import torch
import torchvision
from onnx import helper
from safetensors.torch import save_file

from attrib_audit.errors import AttribAuditError, UntrustedCodeError
from attrib_audit.models import load_model, sample_model
from attrib_audit.models.zoo import digits_cnn

CARD = {"input_shape": (1, 8, 8), "value_range": (0.0, 1.0)}


def _x(n=5, shape=(1, 8, 8)):
    return torch.rand((n, *shape), generator=torch.Generator().manual_seed(0))


@pytest.fixture
def weights(tmp_path):
    torch.manual_seed(0)
    model = digits_cnn().eval()
    path = tmp_path / "w.pt"
    torch.save(model.state_dict(), path)
    return model, path


def test_state_dict_with_a_package_factory_spec(weights):
    model, path = weights
    loaded = load_model(path, arch="attrib_audit.models.zoo:digits_cnn(num_classes=10)", **CARD)
    assert loaded.format == "state_dict"
    assert loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert not loaded.module.training
    x = _x()
    torch.testing.assert_close(loaded.module(x), model(x))
    assert loaded.card.classes == tuple(str(i) for i in range(10))


def test_state_dict_with_a_file_spec(weights, tmp_path):
    model, path = weights
    arch_file = tmp_path / "my_arch.py"
    arch_file.write_text(
        "from attrib_audit.models.zoo import digits_cnn\n"
        "def build(num_classes=10):\n    return digits_cnn(num_classes)\n"
    )
    loaded = load_model(path, arch=f"{arch_file}:build", **CARD)
    torch.testing.assert_close(loaded.module(_x()), model(_x()))
    # a sidecar card may name the file relative to the checkpoint's folder, but code that
    # comes with a checkpoint runs only when the user trusts it
    path.with_suffix(".toml").write_text(
        'arch = "my_arch.py:build"\ninput_shape = [1, 8, 8]\nvalue_range = [0.0, 1.0]\n'
    )
    with pytest.raises(UntrustedCodeError, match="--trust-checkpoint"):
        load_model(path)
    torch.testing.assert_close(load_model(path, trust=True).module(_x()), model(_x()))


def test_state_dict_with_a_torchvision_spec(tmp_path):
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=4).eval()
    path = tmp_path / "r.pth"
    torch.save({"state_dict": model.state_dict()}, path)  # a training checkpoint's layout
    loaded = load_model(
        path,
        arch="torchvision:resnet18(num_classes=4)",
        input_shape=(3, 32, 32),
        value_range=(0.0, 1.0),
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
    )
    x = _x(2, (3, 32, 32))
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(loaded.module(x), model((x - mean) / std))  # normalised inside


def test_safetensors(weights, tmp_path):
    model, _ = weights
    path = tmp_path / "w.safetensors"
    save_file(model.state_dict(), str(path))
    loaded = load_model(path, arch="attrib_audit.models.zoo:digits_cnn", **CARD)
    assert loaded.format == "safetensors"
    torch.testing.assert_close(loaded.module(_x()), model(_x()))


def test_torchscript_needs_no_architecture(weights, tmp_path):
    model, _ = weights
    path = tmp_path / "s.pt"
    torch.jit.save(torch.jit.trace(model, _x(1)), str(path))
    loaded = load_model(path, **CARD)
    assert loaded.format == "torchscript"
    torch.testing.assert_close(loaded.module(_x()), model(_x()))


def test_a_pickled_module_is_refused_without_trust(weights, tmp_path):
    model, _ = weights
    path = tmp_path / "full.pt"
    torch.save(model, path)
    with pytest.raises(AttribAuditError, match="--trust-checkpoint"):
        load_model(path, **CARD)
    loaded = load_model(path, trust=True, **CARD)
    torch.testing.assert_close(loaded.module(_x()), model(_x()))


@pytest.mark.parametrize(
    "missing,flag",
    [("arch", "--arch"), ("input_shape", "--input-shape"), ("value_range", "--value-range")],
)
def test_a_missing_card_fact_names_its_flag(weights, missing, flag):
    _, path = weights
    given = {"arch": "attrib_audit.models.zoo:digits_cnn", **CARD}
    del given[missing]
    with pytest.raises(AttribAuditError, match=flag):
        load_model(path, **given)


def test_bad_inputs_are_clear_errors(weights, tmp_path):
    _, path = weights
    with pytest.raises(AttribAuditError, match="does not exist"):
        load_model(tmp_path / "nope.pt")
    with pytest.raises(AttribAuditError, match="do not fit architecture"):
        load_model(path, arch="torchvision:resnet18", input_shape=(3, 8, 8), value_range=(0, 1))
    with pytest.raises(AttribAuditError, match="bad architecture spec"):
        load_model(path, arch="resnet18", **CARD)
    with pytest.raises(AttribAuditError, match="literal values"):
        load_model(path, arch="torchvision:resnet18(num_classes=__import__('os'))", **CARD)
    with pytest.raises(AttribAuditError, match="classes"):
        load_model(path, arch="attrib_audit.models.zoo:digits_cnn", classes=("a", "b"), **CARD)
    garbage = tmp_path / "g.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(AttribAuditError, match="cannot read"):
        load_model(garbage, arch="attrib_audit.models.zoo:digits_cnn", **CARD)


def test_flags_override_the_sidecar():
    path = sample_model("digits-cnn", "pt")
    loaded = load_model(path, classes=tuple("abcdefghij"))
    assert loaded.card.classes == tuple("abcdefghij")
    assert loaded.card.arch == "attrib_audit.models.zoo:digits_cnn"  # from the sidecar


def _identity_graph(tmp_path):
    """A torch export with de-duplicated equal biases, the second reached through an Identity
    node over the first's initialiser (what torch.onnx.export emits for such models)."""

    class TwoConv(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = torch.nn.Conv2d(1, 4, 3, padding=1)
            self.c2 = torch.nn.Conv2d(4, 4, 3, padding=1)
            self.fc = torch.nn.Linear(4 * 16, 3)
            torch.nn.init.constant_(self.c1.bias, 0.1)
            torch.nn.init.constant_(self.c2.bias, 0.1)

        def forward(self, x):
            x = torch.relu(self.c1(x))
            x = torch.nn.functional.max_pool2d(x, 2)
            return self.fc(torch.relu(self.c2(x)).flatten(1))

    torch.manual_seed(0)
    model = TwoConv().eval()
    path = tmp_path / "two.onnx"
    torch.onnx.export(
        model,
        (_x(2),),
        str(path),
        input_names=["x"],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        verbose=False,
    )
    graph = onnx.load(str(path))
    convs = [n for n in graph.graph.node if n.op_type == "Conv"]
    shared = convs[0].input[2]
    assert convs[1].input[2] == shared, "the exporter de-duplicates equal initialisers"
    convs[1].input[2] = "c2.bias"
    graph.graph.node.insert(0, helper.make_node("Identity", [shared], ["c2.bias"]))
    onnx.checker.check_model(graph)
    onnx.save(graph, str(path))
    return model, path, graph


def test_onnx_with_identity_over_initialisers_loads_and_matches_onnxruntime(tmp_path):
    from onnx2torch import convert

    model, path, graph = _identity_graph(tmp_path)
    with pytest.raises((KeyError, NotImplementedError)):
        convert(graph)  # what normalisation is for
    loaded = load_model(path, value_range=(0.0, 1.0))
    assert loaded.format == "onnx"
    assert loaded.card.input_shape == (1, 8, 8)  # read from the graph
    assert loaded.conversion_error is not None and loaded.conversion_error < 1e-4
    x = _x(7)
    with torch.no_grad():
        torch.testing.assert_close(loaded.module(x), loaded.predict(x), atol=1e-4, rtol=1e-3)
        torch.testing.assert_close(loaded.predict(x), model(x), atol=1e-4, rtol=1e-3)


def test_onnx_without_a_value_range_asks_for_it(tmp_path):
    _, path, _ = _identity_graph(tmp_path)
    with pytest.raises(AttribAuditError, match="--value-range"):
        load_model(path)


def test_bundled_onnx_and_state_dict_agree():
    a = load_model(sample_model("digits-cnn", "pt"))
    b = load_model(sample_model("digits-cnn", "onnx"))
    assert b.card.value_range == (0.0, 1.0)
    x = _x(16)
    torch.testing.assert_close(a.predict(x), b.predict(x), atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(a.module(x), b.module(x), atol=1e-4, rtol=1e-3)
