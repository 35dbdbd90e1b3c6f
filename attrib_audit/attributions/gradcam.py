"""Grad-CAM (Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from Deep Networks via
Gradient-based Localization"): a convolution's activation maps weighted by the spatial mean of
their gradients, rectified and upsampled to the input."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attrib_audit.attributions._common import (
    check_inputs,
    chunk_rows,
    differentiable,
    quantity,
)
from attrib_audit.errors import SettingError
from attrib_audit.params import Params, setting
from attrib_audit.registry import METHODS


@dataclass(frozen=True)
class GradCAMParams(Params):
    layer: str | None = setting(
        None,
        "module name of the layer whose activations are weighted, as in the checkpoint's "
        "state_dict (None: the last nn.Conv2d)",
    )


def find_layer(model: nn.Module, layer: str | None) -> tuple[str, nn.Module]:
    """The layer Grad-CAM weights: the module named ``layer`` (a wrapper's prefix such as
    ``inner.`` may be left out), else the last ``nn.Conv2d`` in registration order."""
    named = list(model.named_modules())
    if layer is None:
        convs = [(n, m) for n, m in named if isinstance(m, nn.Conv2d)]
        if not convs:
            raise SettingError(
                "method_params.gradcam.layer",
                "is needed: the model has no nn.Conv2d; name a layer with (B, K, h, w) output",
            )
        return convs[-1]
    found = [(n, m) for n, m in named if n == layer or n.endswith("." + layer)]
    if len(found) != 1:
        some = ", ".join(_shown(n) for n, m in named if isinstance(m, nn.Conv2d))[-300:]
        what = "names no module" if not found else "is ambiguous"
        raise SettingError(
            "method_params.gradcam.layer", f"{layer!r} {what}; its convolutions: {some or 'none'}"
        )
    return found[0]


def _shown(name: str) -> str:
    """A module's name as the checkpoint has it: without this tool's wrappers' prefixes (the
    surrogate's ``module.``, the normalisation's ``inner.``), which ``layer`` may leave out."""
    while name.startswith(("module.", "inner.")):
        name = name.partition(".")[2]
    return name


@METHODS.declare("gradcam", params=GradCAMParams, title="Grad-CAM")
def grad_cam(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    *,
    layer: str | None = None,
    explain: str = "logit",
    create_graph: bool = False,
    max_batch: int | None = None,
) -> Tensor:
    """``ReLU(sum_k alpha_k A^k)`` with ``alpha_k`` the spatial mean of ``d f_y / d A^k``, ``A``
    the output of ``layer``, upsampled bilinearly to the input's height and width and spread
    evenly over its channels, so the channel-summed map is the CAM itself (Captum's
    ``LayerGradCam`` followed by bilinear ``LayerAttribution.interpolate``). With
    ``create_graph=True`` the map is differentiable in x, so it can be attacked (on a smooth
    surrogate, whose activations have second derivatives).

    Shape:
        x: (B, C, H, W)
        target: (B,)
        returns: (B, C, H, W)
    """
    check_inputs(x, target)
    if x.dim() != 4:
        raise ValueError(f"x must have shape (B, C, H, W), got {tuple(x.shape)}")
    b, c, h, w = x.shape
    name, module = find_layer(model, layer)
    step = chunk_rows(model, x, max_batch, create_graph=create_graph)
    captured: list[Tensor] = []
    handle = module.register_forward_hook(lambda _m, _i, out: captured.append(out))
    maps = []
    try:
        for start in range(0, b, step):
            chunk = differentiable(x[start : start + step], create_graph)
            t = target[start : start + step]
            captured.clear()
            with torch.enable_grad():
                scores = quantity(model(chunk), t, explain)
                act = captured[-1]
                if not isinstance(act, Tensor) or act.dim() != 4:
                    shape = tuple(act.shape) if isinstance(act, Tensor) else type(act).__name__
                    raise SettingError(
                        "method_params.gradcam.layer",
                        f"{name!r} gives {shape}; Grad-CAM needs a layer with (B, K, h, w) output",
                    )
                (grad,) = torch.autograd.grad(
                    scores.sum(), act, create_graph=create_graph, allow_unused=True
                )
                if grad is None:
                    raise SettingError(
                        "method_params.gradcam.layer",
                        f"{name!r} is not on the path from the input to the logits",
                    )
                cam = F.relu((grad.mean((2, 3), keepdim=True) * act).sum(1, keepdim=True))
                up = F.interpolate(cam, size=(h, w), mode="bilinear", align_corners=False)
            maps.append(up.expand(-1, c, h, w) / c)
    finally:
        handle.remove()
    out = maps[0] if len(maps) == 1 else torch.cat(maps)
    return out if create_graph else out.detach()
