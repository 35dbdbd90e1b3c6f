"""Smooth surface regularisation (Wang et al., SSR Def. 7 and Prop. 3)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attrib_audit.objectives._common import Loss, loss_of
from attrib_audit.params import Params, setting
from attrib_audit.registry import OBJECTIVES


@dataclass(frozen=True)
class SSRParams(Params):
    beta: float = setting(0.3, "weight of the curvature term", min=0)
    s: float = setting(1e6, "scale of the top eigenvalue (choose it for your inputs)", min=0)
    iterations: int = setting(10, "power iterations for the top eigenvalue", min=1)


def hessian_vector_product(logits: Tensor, x: Tensor, v: Tensor, *, create_graph: bool) -> Tensor:
    """``H v`` for ``H = J (diag(p) - p p^T) J^T`` per sample, J the input Jacobian of the
    logits and p the probabilities, by one Jacobian-vector and one vector-Jacobian product;
    H (d x d) is never formed.

    ``J v`` uses the double-vjp trick: ``u -> J^T u`` is linear, so the gradient of
    ``<J^T u, v>`` with respect to u is ``J v``.

    Shape:
        logits: (B, K) computed from x
        x, v: (B, ...)
        returns: (B, ...)
    """
    u = torch.zeros_like(logits, requires_grad=True)
    (jt_u,) = torch.autograd.grad(logits, x, grad_outputs=u, create_graph=True)
    (jv,) = torch.autograd.grad((jt_u * v).sum(), u, create_graph=True)
    p = logits.softmax(1)
    mu = p * jv - p * (p * jv).sum(1, keepdim=True)  # (diag(p) - p p^T) J v
    (hv,) = torch.autograd.grad(
        logits, x, grad_outputs=mu, create_graph=create_graph, retain_graph=True
    )
    return hv


def top_eigenvalue(
    model: nn.Module, x: Tensor, *, iterations: int = 10, generator: torch.Generator | None = None
) -> Tensor:
    """Largest eigenvalue of H = J (diag(p) - p p^T) J^T per sample, by power iteration
    (H is positive semi-definite, so the dominant eigenvalue is the largest). The final
    Rayleigh quotient ``v^T H v`` is differentiable in the model's parameters.

    Shape:
        x: (B, C, H, W)
        returns: (B,)
    """
    x = x.detach().requires_grad_(True)
    logits = model(x)
    v = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    for _ in range(iterations):
        v = v / v.flatten(1).norm(dim=1).clamp_min(1e-30).view(-1, *([1] * (x.dim() - 1)))
        v = hessian_vector_product(logits, x, v, create_graph=False).detach()
    v = v / v.flatten(1).norm(dim=1).clamp_min(1e-30).view(-1, *([1] * (x.dim() - 1)))
    hv = hessian_vector_product(logits, x, v, create_graph=True)
    return (hv * v).flatten(1).sum(1)


@OBJECTIVES.declare("ssr", params=SSRParams)
def ssr(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    beta: float = 0.3,
    s: float = 1e6,
    iterations: int = 10,
    generator: torch.Generator | None = None,
) -> Loss:
    """``CE + beta * s * lambda_max(H)``, averaged over the batch (SSR Def. 7).

    SSR's CIFAR-10 setting is beta 0.3 with s 1e6; s only rescales the eigenvalue to the
    loss's size, so choose it for your inputs (``attrib-audit finetune --param s=...``).
    """
    ce = F.cross_entropy(model(x), y)
    lam = top_eigenvalue(model, x, iterations=iterations, generator=generator).mean()
    return loss_of(ce=ce, ssr=beta * s * lam)
