"""Saliency map: the input gradient of the explained quantity (SSR paper, Def. 1)."""

from __future__ import annotations

from torch import Tensor, nn

from attrib_audit.attributions._common import check_inputs, gradients
from attrib_audit.registry import METHODS


@METHODS.declare("sm", title="Saliency map")
def saliency(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    *,
    explain: str = "logit",
    create_graph: bool = False,
    max_batch: int | None = None,
) -> Tensor:
    """Gradient of the target's logit (or probability, or loss) with respect to ``x``.

    Args:
        model: returns logits (B, K).
        x: inputs in the model card's value range.
        target: the class explained per sample.
        explain: "logit", "probability" or "loss".
        create_graph: keep the graph so the map can be differentiated with respect to ``x``.
        max_batch: largest batch passed to the model at once.

    Shape:
        x: (B, C, H, W)
        target: (B,)
        returns: (B, C, H, W)
    """
    check_inputs(x, target)
    return gradients(
        model, x, target, explain=explain, create_graph=create_graph, max_batch=max_batch
    )
