"""ONNX classifiers in the forms other exporters write (built with onnx.helper): each converts,
agrees with onnxruntime on the original graph, and audits; a graph it cannot convert is one
line naming the node and its op."""

import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto
from onnx import helper as h
from onnx import numpy_helper as nh

from attrib_audit.errors import AttribAuditError
from attrib_audit.models import load_model

CLASSES = 3


def classifier(
    *,
    constants=False,
    inputs_too=False,
    opset=13,
    batch=None,
    ends_in=None,
    relu_op="Relu",
    ir=None,
    nhwc=False,
):
    """A Conv-ReLU-Reshape-Gemm classifier of (B, 1, 8, 8) inputs in one exporter's form:
    weights as Constant nodes, initialisers also listed as inputs (IR < 4), an old or new
    opset, a fixed batch, a trailing Softmax/LogSoftmax."""
    rng = np.random.default_rng(0)
    tensors = {
        "W1": rng.normal(0, 0.5, (4, 1, 3, 3)).astype(np.float32),
        "B1": rng.normal(0, 0.1, 4).astype(np.float32),
        "W2": rng.normal(0, 0.3, (CLASSES, 4 * 8 * 8)).astype(np.float32),
        "B2": rng.normal(0, 0.1, CLASSES).astype(np.float32),
        "shape": np.array([1 if batch == 1 else -1, 4 * 8 * 8], dtype=np.int64),
    }
    nodes, inits = [], []
    if constants:
        nodes += [
            h.make_node("Constant", [], [k], value=nh.from_array(v, k)) for k, v in tensors.items()
        ]
    else:
        inits = [nh.from_array(v, k) for k, v in tensors.items()]
    if nhwc:  # channels-last input, transposed first (tf2onnx's form)
        nodes.append(h.make_node("Transpose", ["x"], ["x_nchw"], perm=[0, 3, 1, 2], name="t"))
    nodes += [
        h.make_node(
            "Conv", ["x_nchw" if nhwc else "x", "W1", "B1"], ["c"], pads=[1, 1, 1, 1], name="conv"
        ),
        h.make_node(relu_op, ["c"], ["r"], name="act"),
        h.make_node("Reshape", ["r", "shape"], ["f"], name="flatten"),
        h.make_node("Gemm", ["f", "W2", "B2"], ["logits"], transB=1, name="fc"),
    ]
    out = "logits"
    if ends_in:
        nodes.append(h.make_node(ends_in, ["logits"], ["probs"], axis=1, name="head"))
        out = "probs"
    b = batch or "N"
    dims = [b, 8, 8, 1] if nhwc else [b, 1, 8, 8]
    inputs = [h.make_tensor_value_info("x", TensorProto.FLOAT, dims)]
    if inputs_too:
        inputs += [h.make_tensor_value_info(i.name, i.data_type, list(i.dims)) for i in inits]
    graph = h.make_graph(
        nodes,
        "g",
        inputs,
        [h.make_tensor_value_info(out, TensorProto.FLOAT, [b, CLASSES])],
        initializer=inits,
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", opset)])
    if ir is not None:
        model.ir_version = ir
    onnx.checker.check_model(model)
    return model


def _save(tmp_path, model):
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path))
    return path


def _original(path, x):
    """onnxruntime on the file as written, one sample at a time (any batch form runs so)."""
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[i : i + 1].numpy()})[0] for i in range(len(x))])


FORMS = {
    "weights-as-constants": {"constants": True},
    "initialisers-as-inputs-ir3": {"inputs_too": True, "ir": 3, "opset": 7},
    "opset-7": {"opset": 7},
    "opset-9": {"opset": 9},
    "opset-11": {"opset": 11},
    "opset-17": {"opset": 17},
    "newest-opset": {"opset": onnx.defs.onnx_opset_version()},
    "fixed-batch-1": {"batch": 1},
    "softmax-head": {"ends_in": "Softmax"},
    "logsoftmax-head": {"ends_in": "LogSoftmax"},
    "all-at-once": {"constants": True, "batch": 1, "ends_in": "Softmax", "opset": 9},
    "channels-last": {"nhwc": True},
    "channels-last-batch-1-softmax": {"nhwc": True, "batch": 1, "ends_in": "Softmax"},
}


@pytest.mark.parametrize("form", FORMS)
def test_each_exporter_form_converts_and_agrees_with_onnxruntime(tmp_path, form):
    kw = FORMS[form]
    path = _save(tmp_path, classifier(**kw))
    loaded = load_model(path, value_range=(0.0, 1.0))
    assert loaded.card.input_shape == (1, 8, 8)  # (C, H, W) whatever the graph's layout
    x = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = loaded.module(x)
    assert logits.shape == (5, CLASSES)
    head = kw.get("ends_in")
    ours = {None: logits, "Softmax": logits.softmax(1), "LogSoftmax": logits.log_softmax(1)}[head]
    raw = x.permute(0, 2, 3, 1).contiguous() if kw.get("nhwc") else x  # what the graph takes
    np.testing.assert_allclose(ours.numpy(), _original(path, raw), rtol=1e-4, atol=1e-5)
    # the audited predictions (onnxruntime) are the original graph's
    assert torch.equal(
        loaded.predict(x).argmax(1), torch.from_numpy(_original(path, raw)).argmax(1)
    )
    notes = " ".join(loaded.onnx_notes)
    assert (loaded.card.layout == "NHWC") == ("channels-last" in notes) == bool(kw.get("nhwc"))
    assert (head in notes) if head else "removed" not in notes
    assert ("batch of 1" in notes) == (kw.get("batch") == 1)


def test_gradients_flow_through_a_fixed_batch_graph(tmp_path):
    loaded = load_model(_save(tmp_path, classifier(batch=1)), value_range=(0.0, 1.0))
    x = torch.rand(3, 1, 8, 8, requires_grad=True)
    (g,) = torch.autograd.grad(loaded.module(x)[:, 0].sum(), x)
    assert g.shape == x.shape and g.abs().sum() > 0


def test_a_graph_with_a_softmax_head_audits_and_the_report_says_so(tmp_path):
    from attrib_audit.pipeline import AuditConfig, audit

    path = _save(tmp_path, classifier(ends_in="Softmax", batch=1, constants=True))
    data = tmp_path / "data.npz"
    g = np.random.default_rng(0)
    np.savez(data, x=g.random((6, 1, 8, 8)).astype(np.float32))
    report = audit(
        AuditConfig(
            model=str(path),
            value_range=(0.0, 1.0),
            data=str(data),
            methods=["sm"],
            attacks=["ifia-topk"],
            epsilons=[8 / 255],
            steps=2,
            out=None,
        )
    )
    notes = " ".join(report["model"]["onnx"]["notes"])
    assert "Softmax" in notes and "batch of 1" in notes
    assert report["model"]["onnx"]["disagreements"] == 0 and report["data"]["n_samples"] == 6


def test_a_fixed_batch_other_than_one_is_a_clear_error(tmp_path):
    model = classifier()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 4
    with pytest.raises(AttribAuditError, match="fixes its batch at 4"):
        load_model(_save(tmp_path, model), value_range=(0.0, 1.0))


def test_an_op_the_converter_lacks_is_one_line_naming_the_node_and_op(tmp_path):
    path = _save(tmp_path, classifier(relu_op="Shrink"))
    with pytest.raises(AttribAuditError) as info:
        load_model(path, value_range=(0.0, 1.0))
    message = str(info.value)
    assert "at node act (Shrink)" in message and "\n" not in message


def test_a_card_layout_of_nhwc_feeds_a_torch_model_channels_last(tmp_path):
    """The card's layout works for any format: here a state_dict whose architecture takes
    (B, H, W, C); it is given (B, C, H, W) images transposed, so it equals its NCHW core."""
    (tmp_path / "arch.py").write_text(
        "import torch\n"
        "from torch import nn\n\n"
        "class ChannelsLastNet(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.core = nn.Sequential(\n"
        "            nn.Conv2d(3, 2, 3), nn.Flatten(), nn.Linear(2 * 4 * 6, 4)\n"
        "        )\n\n"
        "    def forward(self, x):\n"
        "        assert x.shape[-1] == 3, 'expects channels last'\n"
        "        return self.core(x.permute(0, 3, 1, 2))\n\n"
        "def net():\n"
        "    torch.manual_seed(0)\n"
        "    return ChannelsLastNet()\n"
    )
    spec = f"{tmp_path / 'arch.py'}:net"
    from attrib_audit.models.arch import build_arch

    net = build_arch(spec)
    torch.save(net.state_dict(), tmp_path / "model.pt")
    (tmp_path / "model.toml").write_text('layout = "NHWC"\ninput_shape = [3, 6, 8]\n')
    loaded = load_model(tmp_path / "model.pt", arch=spec, value_range=(0.0, 1.0))
    x = torch.rand(2, 3, 6, 8)
    with torch.no_grad():
        torch.testing.assert_close(loaded.module(x), net.core(x))
    with pytest.raises(AttribAuditError, match="layout must be NCHW or NHWC"):
        load_model(tmp_path / "model.pt", arch=spec, value_range=(0.0, 1.0), card=_card(tmp_path))


def _card(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('layout = "CHW"\ninput_shape = [3, 6, 8]\n')
    return path


LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
# onnx's copies of the ONNX model zoo's classic classifiers, as Caffe2's exporter wrote them
# (opset 9, IR 3, weights as graph inputs computed by ConstantOfShape, a fixed batch of 1, a
# Softmax head; the weights are constants, so only the graphs are real)
LIGHT_MODELS = sorted(p.stem for p in LIGHT.glob("light_*.onnx"))
UNCONVERTIBLE = {"light_inception_v1": "at node n138 (AveragePool)"}


@pytest.mark.slow
@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_third_party_zoo_graphs_load_and_agree_or_name_the_node(name):
    path = LIGHT / f"{name}.onnx"
    if name in UNCONVERTIBLE:
        with pytest.raises(AttribAuditError, match=re.escape(UNCONVERTIBLE[name])) as info:
            load_model(path, value_range=(0.0, 1.0))
        assert "\n" not in str(info.value)
        return
    loaded = load_model(path, value_range=(0.0, 1.0))  # verified against onnxruntime inside
    assert loaded.card.input_shape == (3, 224, 224) and loaded.num_classes == 1000
    notes = " ".join(loaded.onnx_notes)
    assert "batch of 1" in notes
    x = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = loaded.module(x)
    if "Softmax" in notes:  # removed: the module gives the logits before it
        ours = ours.softmax(1)
    theirs = _original(path, x).reshape(2, -1)  # squeezenet's head is (B, 1000, 1, 1)
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-3, atol=1e-5)
