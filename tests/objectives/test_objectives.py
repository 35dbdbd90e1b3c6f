import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attrib_audit.objectives import (
    cacr,
    hessian_vector_product,
    ig_sum_norm,
    input_grad,
    madry,
    madry_point,
    top_eigenvalue,
    wacr,
)
from attrib_audit.registry import OBJECTIVES
from tests.conftest import tiny_cnn

SMALL = {
    "epsilon": 0.1,
    "steps": 2,
    "step_size": 0.05,
    "m_attack": 3,
    "m_grad": 3,
    "m": 3,
    "iterations": 3,
    "s": 1.0,
}


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(4, 1, 6, 6, generator=g, dtype=torch.float64), torch.tensor([0, 1, 2, 1]))


def _params_for(fn):
    import inspect

    names = inspect.signature(fn).parameters
    return {k: v for k, v in SMALL.items() if k in names}


@pytest.mark.parametrize("name", OBJECTIVES.names())
def test_finite_loss_and_gradients_and_terms_add_up(name):
    model = tiny_cnn(nn.Softplus)
    x, y = _batch()
    fn = OBJECTIVES.get(name).obj
    kwargs = _params_for(fn)
    if "generator" in __import__("inspect").signature(fn).parameters:
        kwargs["generator"] = torch.Generator().manual_seed(0)
    loss = fn(model, x, y, **kwargs)
    assert loss.total.dim() == 0 and torch.isfinite(loss.total)
    torch.testing.assert_close(loss.total, sum(loss.terms.values()))
    loss.total.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0
    assert all(p.requires_grad for p in model.parameters())  # inner loops restore flags


def test_ig_sum_norm_with_beta_zero_is_madry_at_the_same_point():
    model = tiny_cnn(nn.ReLU)
    x, y = _batch()
    x_adv = madry_point(
        model,
        x,
        y,
        epsilon=0.1,
        steps=3,
        step_size=0.05,
        value_range=(0, 1),
        generator=torch.Generator().manual_seed(0),
    )
    a = ig_sum_norm(model, x, y, beta=0.0, x_adv=x_adv)
    b = madry(model, x, y, x_adv=x_adv)
    torch.testing.assert_close(a.total, b.total, rtol=0, atol=0)


def test_input_grad_equals_its_closed_form_on_a_linear_model():
    torch.manual_seed(0)
    lin = nn.Sequential(nn.Flatten(), nn.Linear(36, 3)).double()
    x, y = _batch()
    for q in (1.0, 2.0):
        got = input_grad(lin, x, y, lam=0.7, q=q)
        w = lin[1].weight
        p = lin(x).softmax(1)
        grad_x = (p - F.one_hot(y, 3).double()) @ w
        # d CE_i / d x_i = W^T (p_i - e_y)
        closed = 0.7 * grad_x.abs().pow(q).sum(1).mean()
        torch.testing.assert_close(got.terms["input_grad"], closed)
        torch.testing.assert_close(got.terms["ce"], F.cross_entropy(lin(x), y))


def test_ssr_power_iteration_matches_the_dense_top_eigenvalue():
    model = tiny_cnn(nn.Softplus)
    x, _ = _batch()
    got = top_eigenvalue(model, x, iterations=200, generator=torch.Generator().manual_seed(0))
    for i in range(x.shape[0]):
        xi = x[i : i + 1]
        jac = torch.autograd.functional.jacobian(lambda z: model(z)[0], xi).reshape(3, -1)
        p = model(xi).softmax(1)[0]
        h = jac.T @ (torch.diag(p) - torch.outer(p, p)) @ jac
        dense = torch.linalg.eigvalsh(h).max()
        assert got[i].item() == pytest.approx(dense.item(), rel=1e-6)


def test_hessian_vector_product_matches_the_dense_matrix():
    model = tiny_cnn(nn.Softplus)
    x, _ = _batch()
    xi = x[:1].clone().requires_grad_(True)
    v = torch.randn(xi.shape, generator=torch.Generator().manual_seed(1), dtype=xi.dtype)
    hv = hessian_vector_product(model(xi), xi, v, create_graph=False)
    jac = torch.autograd.functional.jacobian(lambda z: model(z)[0], x[:1]).reshape(3, -1)
    p = model(x[:1]).softmax(1)[0]
    dense = jac.T @ (torch.diag(p) - torch.outer(p, p)) @ jac
    torch.testing.assert_close(hv.flatten(), dense @ v.flatten())


def _naive_cacr(t, n):
    out = []
    for ti, ni in zip(t, n, strict=True):
        ti, ni = ti.flatten().tolist(), ni.flatten().tolist()
        count = len(ti)
        pt = [torch.tensor(v).exp().item() for v in ti]
        pn = [torch.tensor(v).exp().item() for v in ni]
        pt = [v / sum(pt) for v in pt]
        pn = [v / sum(pn) for v in pn]
        me = 1 / count
        kl_n = sum(
            me * (torch.tensor(me).log() - torch.tensor(pn[i]).log()).item() for i in range(count)
        )
        kl_t = sum(
            me * (torch.tensor(me).log() - torch.tensor(pt[i]).log()).item() for i in range(count)
        )
        out.append(kl_n - kl_t)  # Eq. 6
    return torch.tensor(out, dtype=torch.float64)


def _naive_wacr(a, d):
    out = []
    for ai, di in zip(a, d, strict=True):
        total = 0.0
        for av, dv in zip(ai.flatten().tolist(), di.flatten().tolist(), strict=True):
            if av * dv < 0:  # P1: signs differ
                total += abs(dv)
            else:  # P2
                total += abs(av * dv)
        out.append(total)  # Eq. 9 with S = L1
    return torch.tensor(out, dtype=torch.float64)


def test_cacr_and_wacr_match_a_naive_per_pixel_implementation():
    g = torch.Generator().manual_seed(3)
    t = torch.randn(3, 1, 4, 4, generator=g, dtype=torch.float64)
    n = torch.randn(3, 1, 4, 4, generator=g, dtype=torch.float64)
    torch.testing.assert_close(cacr(t, n), _naive_cacr(t, n))
    a = torch.randn(3, 2, 3, 3, generator=g, dtype=torch.float64)
    d = torch.randn(3, 2, 3, 3, generator=g, dtype=torch.float64)
    w = wacr(a, d)
    torch.testing.assert_close(w, _naive_wacr(a, d))
    assert (w >= 0).all()
    assert (cacr(t, n) < 0).any() or (cacr(n, t) < 0).any()  # CACR can be negative


def test_a_few_ig_norm_steps_reduce_the_regulariser(digits_model, digits_data):
    from attrib_audit.objectives import ig_norm

    model = copy.deepcopy(digits_model.module).train()
    for p in model.parameters():
        p.requires_grad_(True)
    x, y = digits_data.x[:32], digits_data.y[:32]
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    kw = {"epsilon": 0.1, "steps": 5, "step_size": 0.02, "m_attack": 5, "m_grad": 5}

    def regulariser():
        return (
            ig_norm(model, x, y, generator=torch.Generator().manual_seed(0), **kw)
            .terms["ig_norm"]
            .item()
        )

    before = regulariser()
    for i in range(5):
        loss = ig_norm(model, x, y, generator=torch.Generator().manual_seed(i), **kw)
        opt.zero_grad()
        loss.total.backward()
        opt.step()
    assert regulariser() < 0.8 * before
