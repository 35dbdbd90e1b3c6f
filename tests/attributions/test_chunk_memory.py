"""Chunks sized by the bytes of their graphs, and second-order maps whose memory is one chunk's
(each chunk's graph recomputed in the backward instead of kept)."""

import gc
import weakref

import pytest
import torch
from torch import nn

from attrib_audit.attributions import _common, integrated_gradients, saliency
from tests.conftest import tiny_cnn

TARGET = torch.tensor([0, 2, 1, 0])


def _frozen(model: nn.Module) -> nn.Module:
    """As an attack holds it: parameters frozen."""
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _x(n: int = 4) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    return torch.rand(n, 1, 6, 6, generator=g, dtype=torch.float64)


@pytest.fixture
def counted(monkeypatch):
    """How many chunks were recomputed in a backward."""
    calls = []
    backward = _common._RecomputedGradient.backward

    def spy(ctx, v):
        calls.append(v.shape[0])
        return backward(ctx, v)

    monkeypatch.setattr(_common._RecomputedGradient, "backward", staticmethod(spy))
    return calls


def _second_order(model, x, max_batch):
    xg = x.clone().requires_grad_(True)
    m = integrated_gradients(model, xg, TARGET, steps=8, create_graph=True, max_batch=max_batch)
    (g,) = torch.autograd.grad((m * m.detach().sign()).pow(2).sum(), xg)
    return g


def test_recomputed_chunks_give_the_kept_graphs_gradient(monkeypatch, counted):
    model = _frozen(tiny_cnn(nn.Tanh))
    x = _x()
    kept = _second_order(model, x, max_batch=5)
    assert counted == []  # 32 rows of a tiny model fit the budget: graphs kept
    monkeypatch.setitem(_common.GRAPH_BYTES, "cpu", 1)
    recomputed = _second_order(model, x, max_batch=5)
    assert sorted(counted) == [2] + [5] * 6
    torch.testing.assert_close(recomputed, kept, rtol=1e-12, atol=1e-12)


def test_recomputed_chunks_pass_gradcheck(monkeypatch, counted):
    monkeypatch.setitem(_common.GRAPH_BYTES, "cpu", 1)
    model = _frozen(tiny_cnn(nn.Tanh))
    target = TARGET[:2]

    def ig(inp):
        return integrated_gradients(model, inp, target, steps=4, create_graph=True, max_batch=3)

    assert torch.autograd.gradcheck(ig, (_x(2).requires_grad_(True),))
    assert counted  # the backward gradcheck checked was the recomputing one


def test_recomputing_keeps_only_the_chunk_inputs(monkeypatch):
    """The tensors that the map's graph keeps alive once it is computed: every chunk's
    activations when graphs are kept, little more than the chunks' inputs when recomputed."""
    model = _frozen(tiny_cnn(nn.Tanh))
    x = _x().requires_grad_(True)
    _common.saved_bytes_per_row(model, x[0])  # measured outside the count

    def alive_bytes() -> int:
        refs = []

        def pack(t):
            refs.append(weakref.ref(t))
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            m = integrated_gradients(model, x, TARGET, steps=8, create_graph=True, max_batch=4)
        gc.collect()
        storages = {}
        for r in refs:
            t = r()
            if t is not None:
                storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        del m
        return sum(storages.values())

    kept = alive_bytes()
    monkeypatch.setitem(_common.GRAPH_BYTES, "cpu", 1)
    recomputed = alive_bytes()
    points = 8 * x.numel() * x.element_size()
    assert kept > 5 * points
    assert recomputed < 3 * points


def test_training_keeps_graphs_so_parameters_get_their_gradient(monkeypatch, counted):
    monkeypatch.setitem(_common.GRAPH_BYTES, "cpu", 1)
    model = tiny_cnn(nn.Tanh).train()
    x = _x()

    def weight_grads(max_batch):
        m = saliency(model, x, TARGET, create_graph=True, max_batch=max_batch)
        return torch.autograd.grad(m.pow(2).sum(), [model.net[0].weight, model.net[2].weight])

    chunked, whole = weight_grads(1), weight_grads(0)
    assert counted == []
    for a, b in zip(chunked, whole, strict=True):
        assert a.abs().sum() > 0
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_rows_per_chunk_follow_the_graph_bytes(monkeypatch):
    model = tiny_cnn(nn.Tanh)
    points = _x(40)
    per_row = _common.saved_bytes_per_row(model, points[0])
    assert per_row > points[0].numel() * points[0].element_size()  # activations, not input
    monkeypatch.setitem(_common.GRAPH_BYTES, "cpu", 10 * per_row)
    assert _common.auto_max_batch(model, points) == 10
    second = _common.auto_max_batch(model, points, create_graph=True)
    assert second == 10 // _common.SECOND_ORDER_FACTOR
    monkeypatch.setitem(_common.GRAPH_BYTES, "cpu", 1)
    assert _common.auto_max_batch(model, points) == 1  # never less than a row


def test_measuring_a_row_leaves_batch_statistics_alone():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten()).double().train()
    before = model[1].running_mean.clone()
    _common.saved_bytes_per_row(model, _x(1)[0])
    assert torch.equal(model[1].running_mean, before) and model.training and model[1].training


def test_a_plain_function_is_a_model_too(monkeypatch, counted):
    """A callable that is not a module: measured like one, never recomputed (its parameters
    cannot be told frozen)."""
    monkeypatch.setitem(_common.GRAPH_BYTES, "cpu", 1)
    net = _frozen(tiny_cnn(nn.Tanh))

    def model(x):
        return net(x)

    x = _x()
    torch.testing.assert_close(
        _second_order(model, x, max_batch=5), _second_order(net, x, max_batch=0)
    )
    assert counted == []
