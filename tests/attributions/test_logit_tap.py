"""The logits a map's own forward computed at x, reused by keep-best instead of a second
forward."""

import copy
from functools import partial

import pytest
import torch

from attrib_audit.attacks import ifia_topk
from attrib_audit.attacks._common import map_and_prediction
from attrib_audit.attributions import integrated_gradients, saliency
from attrib_audit.attributions._common import logits_at, saved_bytes_per_row
from attrib_audit.metrics import reduce_map
from attrib_audit.models import smooth_surrogate
from tests.conftest import tiny_cnn


class Counting(torch.nn.Module):
    """Counts the model's calls (each chunk of a folded batch is one)."""

    def __init__(self, inner: torch.nn.Module, x) -> None:
        super().__init__()
        self.inner, self.calls = inner, 0
        saved_bytes_per_row(self, x[0])  # the chunk sizing's one-off measurement, not counted
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.inner(x)


@pytest.fixture()
def setup():
    torch.manual_seed(0)
    model = tiny_cnn().eval()
    x = torch.rand(7, 1, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        target = model(x).argmax(1)
    return model, x, target


@pytest.mark.parametrize("max_batch", [0, 3])
def test_saliency_records_the_logits_at_x_in_every_chunk(setup, max_batch):
    model, x, target = setup
    with logits_at(x) as tap:
        saliency(model, x, target, max_batch=max_batch)
    with torch.no_grad():
        expected = model(x)
    assert tap.logits.shape == expected.shape
    torch.testing.assert_close(tap.logits, expected, rtol=1e-6, atol=1e-6)
    assert not tap.logits.requires_grad


def test_a_copy_of_x_or_another_method_records_nothing(setup):
    model, x, target = setup
    with logits_at(x) as tap:
        saliency(model, x.clone(), target)
        integrated_gradients(model, x, target, steps=4)
    assert tap.logits is None
    with logits_at(x) as tap:  # outside the block nothing is recorded
        pass
    saliency(model, x, target)
    assert tap.logits is None


@pytest.mark.parametrize(
    "method, extra_forward", [(saliency, 0), (partial(integrated_gradients, steps=4), 1)]
)
def test_keep_best_prediction_costs_a_forward_only_when_the_map_has_none(
    setup, method, extra_forward
):
    model, x, target = setup
    counted = Counting(model, x)
    m, pred = map_and_prediction(method, counted, x, target, "sum-abs")
    assert counted.calls == 1 + extra_forward  # the map's one call: the whole batch fits
    with torch.no_grad():
        assert torch.equal(pred, model(x).argmax(1))
    torch.testing.assert_close(m, reduce_map(method(model, x, target)))


def test_ifia_with_saliency_runs_one_forward_per_step_on_the_audited_model(setup):
    model, x, target = setup
    counted = Counting(copy.deepcopy(model), x)
    surrogate = smooth_surrogate(model, 10.0)
    steps = 3
    kwargs = {"epsilon": 0.1, "steps": steps, "step_size": 0.03, "k": 6, "seed": 0}
    attacked = ifia_topk(counted, surrogate, x, target, saliency, **kwargs)
    # the clean prediction, the clean map, then one map per step whose logits keep-best reuses
    assert counted.calls == 2 + steps
    assert torch.equal(attacked, ifia_topk(model, surrogate, x, target, saliency, **kwargs))
