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
from matplotlib import colormaps  # noqa: E402
from PIL import Image  # noqa: E402


def _png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def _figure_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return _png_uri(buf.getvalue())


def _array_uri(arr: np.ndarray, *, min_side: int = 112) -> str:
    """(H, W, 3) floats in [0, 1] -> PNG data URI, upscaled (nearest) to at least min_side."""
    img = Image.fromarray((np.clip(arr, 0, 1) * 255).round().astype(np.uint8))
    scale = max(1, -(-min_side // min(img.size)))
    img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return _png_uri(buf.getvalue())


def image_uri(x: np.ndarray, value_range) -> str:
    lo, hi = value_range
    arr = ((x - lo) / (hi - lo)).transpose(1, 2, 0)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return _array_uri(arr[:, :, :3])


def map_uri(m: np.ndarray, scale: float) -> str:
    return _array_uri(colormaps["inferno"](np.abs(m) / scale if scale > 0 else m)[:, :, :3])


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


def gallery_items(report: dict, gallery: dict[str, list[dict]]) -> list[dict[str, Any]]:
    from attrib_audit.arrays import decode_array

    vr = report["model"]["card"]["value_range"]
    classes = report["model"]["card"].get("classes") or []
    out = []
    for method, items in gallery.items():
        for it in items:
            m0, m1 = decode_array(it["map"]), decode_array(it["map_adv"])
            scale = float(max(np.abs(m0).max(), np.abs(m1).max()))
            name = classes[it["prediction"]] if it["prediction"] < len(classes) else ""
            out.append(
                {
                    "method": method,
                    "attack": it["attack"],
                    "epsilon": it["epsilon"],
                    "index": it["index"],
                    "prediction": name or str(it["prediction"]),
                    "metrics": {
                        k: v
                        for k, v in it.items()
                        if k in report.get("summary", {}).get(method, {})
                    },
                    "image": image_uri(decode_array(it["x"]), vr),
                    "image_adv": image_uri(decode_array(it["x_adv"]), vr),
                    "map": map_uri(m0, scale),
                    "map_adv": map_uri(m1, scale),
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
        config_json=json.dumps(config, indent=2, default=str),
        fmt=lambda v: "n/a" if v is None else f"{v:.3f}",
    )
