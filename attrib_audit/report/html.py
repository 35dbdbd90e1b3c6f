"""The HTML report: one self-contained file (images inline), rendered with jinja2."""

from __future__ import annotations

import base64
import io
import json
from collections import defaultdict
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from jinja2 import Environment, PackageLoader, select_autoescape  # noqa: E402
from PIL import Image  # noqa: E402

from attrib_audit.render import grey_image, overlay  # noqa: E402


def _png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def _figure_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return _png_uri(buf.getvalue())


OUTLINE = (0.0, 1.0, 1.0)  # cyan: unlike every colour of the 'inferno' heat map
GALLERY_SIDE = 192  # gallery pictures are upscaled (nearest) to at least this many pixels
OUTLINE_CELLS = 28  # the top-k outline's resolution: a larger map's pixels pooled into cells
SCALE_PERCENTILE = 99.0  # a sample's two maps share this percentile of |map| as their scale


def _array_uri(arr: np.ndarray, *, min_side: int = 112) -> str:
    """(H, W, 3) floats in [0, 1] -> PNG data URI, upscaled (nearest) to at least min_side."""
    img = Image.fromarray((np.clip(arr, 0, 1) * 255).round().astype(np.uint8))
    scale = max(1, -(-min_side // min(img.size)))
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    if img.getcolors(256) is None:  # a photo: a palette of 256 takes a third of the bytes
        img = img.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return _png_uri(buf.getvalue())


def image_uri(x: np.ndarray, value_range, *, min_side: int = 112) -> str:
    """A (C, H, W) image in ``value_range`` as a PNG data URI (see :func:`_array_uri`)."""
    lo, hi = value_range
    arr = ((x - lo) / (hi - lo)).transpose(1, 2, 0)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return _array_uri(arr[:, :, :3], min_side=min_side)


def outline(mask: np.ndarray) -> np.ndarray:
    """The mask's boundary: its pixels with a 4-neighbour outside it (or outside the image).

    Shape:
        mask: (H, W) bool
        returns: (H, W) bool
    """
    if mask.ndim != 2:
        raise ValueError(f"mask must have shape (H, W), got {mask.shape}")
    p = np.pad(mask.astype(bool), 1, constant_values=False)
    inner = p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return p[1:-1, 1:-1] & ~inner


def topk_pixels(m: np.ndarray, k: int) -> np.ndarray:
    """The k largest pixels of a reduced map, picked as the top-k intersection metric picks them.

    Shape:
        m: (H, W)
        returns: (H, W) bool
    """
    import torch

    from attrib_audit.metrics.topk import topk_mask

    k = max(1, min(k, m.size))
    return topk_mask(torch.from_numpy(m.reshape(1, -1)), k).numpy().reshape(m.shape)


def topk_region(m: np.ndarray, k: int, *, cell: int = 1) -> np.ndarray:
    """The clean map's top-k at a resolution an outline can show: the k pixels' worth of
    ``cell`` x ``cell`` cells holding the most of the map (each cell's sum); with ``cell`` 1
    exactly :func:`topk_pixels`. Scattered top-k pixels of a large image outline as speckle.

    Shape:
        m: (H, W)
        returns: (H, W) bool
    """
    if cell <= 1:
        return topk_pixels(m, k)
    H, W = m.shape
    h, w = -(-H // cell), -(-W // cell)
    padded = np.zeros((h * cell, w * cell), dtype=np.float64)
    padded[:H, :W] = m
    pooled = padded.reshape(h, cell, w, cell).sum((1, 3))
    cells = topk_pixels(pooled, max(1, round(k / cell**2)))
    return _upscale(cells, cell)[:H, :W]


def gallery_k(report: dict[str, Any], pixels: int) -> int:
    """The k the audit's top-k intersection used (the config's ``k``), else the audit's default
    for it (an eighth of the pixels); capped to ``pixels``."""
    k = report.get("config", {}).get("k")
    from attrib_audit.config import default_k

    return min(int(k) if k else default_k(pixels), pixels)


def _upscale(a: np.ndarray, factor: int) -> np.ndarray:
    return a.repeat(factor, axis=0).repeat(factor, axis=1) if factor > 1 else a


def map_picture_uri(
    grey: np.ndarray, m: np.ndarray, scale: float, mask: np.ndarray, *, min_side: int = 112
) -> str:
    """:func:`overlay` of ``m`` on ``grey``, upscaled (nearest) to at least ``min_side``, with
    the :func:`outline` of ``mask`` drawn over it one output pixel wide in cyan.

    Shape:
        grey, m, mask: (H, W)
    """
    factor = max(1, -(-min_side // min(m.shape)))
    pic = _upscale(overlay(grey, m, scale), factor)
    pic[outline(_upscale(mask, factor))] = OUTLINE
    return _array_uri(pic, min_side=0)


def curves_uri(report: dict, metrics: list[str]) -> str | None:
    direct = [r for r in report["results"] if r["transfer_from"] is None]
    if len({r["epsilon"] for r in direct}) < 2:
        return None
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 2.8), squeeze=False)
    lines: dict[tuple, list] = defaultdict(list)
    for r in direct:
        lines[(r["method"], r["attack"])].append(r)
    for ax, name in zip(axes[0], metrics, strict=True):
        for (method, attack), items in sorted(lines.items()):
            items = sorted(items, key=lambda r: r["epsilon"])
            ys = [r["metrics"][name]["mean"] for r in items]
            ax.plot(
                [r["epsilon"] for r in items],
                [np.nan if y is None else y for y in ys],
                marker="o",
                label=f"{method} / {attack}",
            )
        ax.set_xscale("log", base=2)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("epsilon", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=7)
    return _figure_uri(fig)


def distributions_uri(report: dict, metrics: list[str]) -> str | None:
    samples = report["samples"]
    if not samples:
        return None
    eps = max(s["epsilon"] for s in samples)
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 2.6), squeeze=False)
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for s in samples:
        if s["epsilon"] == eps and s.get("transfer_from") is None:
            groups[(s["method"], s["attack"])].append(s)
    for ax, name in zip(axes[0], metrics, strict=True):
        for (method, attack), items in sorted(groups.items()):
            vals = [s[name] for s in items if s.get(name) is not None]
            if vals:
                ax.hist(vals, bins=20, alpha=0.5, label=f"{method} / {attack}")
        ax.set_title(f"{name} at eps={eps:.4g}", fontsize=9)
        ax.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=7)
    return _figure_uri(fig)


def _class_name(classes: list[str], i: int) -> str:
    return classes[i] if 0 <= i < len(classes) and classes[i] else str(i)


def map_scale(m0: np.ndarray, m1: np.ndarray) -> float:
    """One scale for a sample's clean and perturbed maps: the ``SCALE_PERCENTILE`` of both
    together, so a few extreme pixels do not leave the rest dark (their max where that is 0)."""
    both = np.abs(np.concatenate([m0.ravel(), m1.ravel()]))
    q = float(np.percentile(both, SCALE_PERCENTILE))
    return q if q > 0 else float(both.max())


def gallery_items(report: dict, gallery: dict[str, list[dict]]) -> list[dict[str, Any]]:
    """The pictures and captions of the gallery's cards: the image, and the clean and the
    perturbed map each over its image in grey (one scale per sample), the clean map's top-k
    pixels outlined on both."""
    from attrib_audit.arrays import decode_array

    vr = report["model"]["card"]["value_range"]
    classes = report["model"]["card"].get("classes") or []
    kept = {
        (s["method"], s["attack"], s["epsilon"], s["index"]): s["prediction_kept"]
        for s in report.get("samples", [])
        if s.get("transfer_from") is None and "prediction_kept" in s
    }
    out = []
    for method, items in gallery.items():
        for it in items:
            x0, x1 = decode_array(it["x"]), decode_array(it["x_adv"])
            m0, m1 = decode_array(it["map"]), decode_array(it["map_adv"])
            scale = map_scale(m0, m1)
            k = gallery_k(report, m0.size)
            cell = max(1, round(min(m0.shape) / OUTLINE_CELLS))
            mask = topk_region(m0, k, cell=cell)
            label = it.get("label")
            if label is not None and label < 0:  # the data had no label
                label = None
            out.append(
                {
                    "method": method,
                    "attack": it["attack"],
                    "epsilon": it["epsilon"],
                    "index": it["index"],
                    "prediction": _class_name(classes, it["prediction"]),
                    "label": None if label is None else _class_name(classes, label),
                    "label_is_prediction": label == it["prediction"],
                    "kept": kept.get((method, it["attack"], it["epsilon"], it["index"])),
                    "k": k,
                    "cell": cell,
                    "metrics": {
                        name: v
                        for name, v in it.items()
                        if name in report.get("summary", {}).get(method, {})
                    },
                    "image": image_uri(x0, vr, min_side=GALLERY_SIDE),
                    "map": map_picture_uri(
                        grey_image(x0, vr), m0, scale, mask, min_side=GALLERY_SIDE
                    ),
                    "map_adv": map_picture_uri(
                        grey_image(x1, vr), m1, scale, mask, min_side=GALLERY_SIDE
                    ),
                }
            )
    return out


def _method_titles(report: dict[str, Any]) -> dict[str, str]:
    """Each summarised method's title (its registered ``title`` fact), where it is registered
    here."""
    from attrib_audit.registry import METHODS

    names = [m for m in report.get("summary", {}) if isinstance(m, str)]
    return {m: METHODS.get(m).facts.title for m in names if m in METHODS}


def render_html(report: dict[str, Any], gallery: dict[str, list[dict]] | None = None) -> str:
    env = Environment(
        loader=PackageLoader("attrib_audit.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
    )
    metrics = list(report["config"].get("metrics") or [])
    summary_metrics = sorted({k for per in report.get("summary", {}).values() for k in per})
    metrics = [m for m in metrics if m in summary_metrics] or summary_metrics
    from attrib_audit.text import brief

    config = {  # a long --classes list is shortened like the card's
        k: brief(v) if isinstance(v, list) and len(v) > 12 else v
        for k, v in report["config"].items()
    }
    return env.get_template("report.html.j2").render(
        r=report,
        brief=brief,
        titles=_method_titles(report),
        metrics=metrics,
        curves=curves_uri(report, metrics) if metrics else None,
        distributions=distributions_uri(report, metrics) if metrics else None,
        gallery=gallery_items(report, gallery or {}),
        scale_percentile=f"{SCALE_PERCENTILE:g}",
        config_json=json.dumps(config, indent=2, default=str),
        fmt=lambda v: "n/a" if v is None else f"{v:.3f}",
    )
