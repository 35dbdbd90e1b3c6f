"""The JSON report (schema_version 1; README.md, "The report") from the audit's plan and grid."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import numpy as np

from attrib_audit.metrics.aggregate import auc_log2, summarize

if TYPE_CHECKING:
    from attrib_audit.plan import Grid, Plan

SCHEMA_VERSION = 1
# config fields the report shows as the entries with their settings (``Plan.entries_config``)
_ENTRY_FIELDS = {"method_params", "attack_params", "metric_params"}


def _key(row: dict) -> tuple:
    return (row["method"], row["attack"], row["epsilon"], row["transfer_from"])


def aggregate(rows: list[dict], metrics: list[str], seed: int) -> list[dict[str, Any]]:
    """One result row per (method, attack, epsilon, transfer source)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[_key(r)].append(r)
    results = []
    for (method, attack, eps, source), items in sorted(
        groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2], kv[0][3] or "")
    ):
        metric_summaries = {}
        for name in metrics:
            vals = [np.nan if r[name] is None else r[name] for r in items]
            metric_summaries[name] = summarize(vals, seed=seed).as_dict()
        results.append(
            {
                "method": method,
                "attack": attack,
                "epsilon": eps,
                "transfer_from": source,
                "n": len(items),
                "prediction_kept": float(np.mean([r["prediction_kept"] for r in items])),
                "flat_maps": sum(bool(r.get("flat_map")) for r in items),
                "metrics": metric_summaries,
            }
        )
    return results


def auc_table(results: list[dict], metrics: list[str]) -> dict[str, Any]:
    """AUC over log2 epsilon of each metric's mean, per direct (method, attack)."""
    curves: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in results:
        if r["transfer_from"] is None and r["epsilon"] > 0:
            curves[(r["method"], r["attack"])].append(r)
    table: dict[str, Any] = {}
    for (method, attack), items in curves.items():
        if len({i["epsilon"] for i in items}) < 2:
            continue
        eps = [i["epsilon"] for i in items]
        table.setdefault(method, {})[attack] = {
            name: _clean(auc_log2(eps, [i["metrics"][name]["mean"] for i in items]))
            for name in metrics
        }
    return table


def summary_table(results: list[dict], metrics: list[str]) -> dict[str, dict[str, Any]]:
    """Per method: each metric's worst mean over attacks (and transfers) at the largest
    epsilon. Worst is the minimum for metrics where higher is robust, the maximum otherwise."""
    from attrib_audit.registry import METRICS

    out: dict[str, dict[str, Any]] = {}
    for method in sorted({r["method"] for r in results}):
        mine = [r for r in results if r["method"] == method]
        eps = max(r["epsilon"] for r in mine)
        at = [r for r in mine if r["epsilon"] == eps]
        out[method] = {}
        for name in metrics:
            higher = METRICS.get(name).facts.higher_is_robust
            vals = [r["metrics"][name]["mean"] for r in at]
            vals = [v for v in vals if v is not None and not np.isnan(v)]
            out[method][name] = _clean((min if higher else max)(vals)) if vals else None
    return out


def certification_table(plan: Plan, certified: dict[str, dict[str, list]]) -> dict[str, Any]:
    """The certificate's settings, its radii (the gate's, and the curve's), and per method
    the certified top-k fraction at the gate's radius and along the curve, the abstained
    fraction of pixels and the size of the smoothed top-k."""
    params, seed = plan.certify, plan.config.seed
    c, h, w = plan.loaded.card.input_shape
    methods = {}
    for method, v in certified.items():
        mean = lambda xs: _clean(float(np.mean(xs))) if xs else None  # noqa: E731
        methods[method] = {
            "n": len(v.get("certified_topk", [])),
            "certified_topk": summarize(v.get("certified_topk", []), seed=seed).as_dict(),
            "curve": [mean(xs) for xs in v.get("curve", [])],
            "abstained": mean(v.get("abstained", [])),
            "smoothed_k": mean(v.get("smoothed_k", [])),
        }
    return {
        "settings": params.as_dict(),
        "k": plan.config.k,
        "radius": params.at,
        "reachable": params.reachable(h * w),
        "curve_radii": params.curve(h * w),
        "norm": "l2",
        "methods": methods,
    }


def _clean(v: float | None) -> float | None:
    return None if v is None or np.isnan(v) else float(v)


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    return obj


def report_config(plan: Plan) -> dict[str, Any]:
    """The resolved config: what the results depend on (:meth:`Plan.settings`, each kind's
    entries as name -> settings, ``"methods": {"ig": {"steps": 16, ...}}``), then where they
    were written."""
    settings = plan.settings()
    return {
        f.name: settings[f.name] if f.name in settings else getattr(plan.config, f.name)
        for f in dataclasses.fields(plan.config)
        if f.name not in _ENTRY_FIELDS and f.name != "resume"
    }


def build_report(plan: Plan, grid: Grid) -> dict[str, Any]:
    from attrib_audit import __version__
    from attrib_audit.report.gate import evaluate_gate, evidence_problems

    cfg, loaded = plan.config, plan.loaded
    results = aggregate(grid.rows, cfg.metrics, cfg.seed)
    model: dict[str, Any] = {
        "path": str(loaded.path),
        "format": loaded.format,
        "sha256": loaded.sha256,
        "card": loaded.card.to_dict(),
        "surrogate": {
            "beta": cfg.beta,
            "prediction_agreement": grid.prediction_agreement,
            "map_cosine": grid.map_cosine,
            "unreplaced": list(plan.surrogate.unreplaced),
            "piecewise": list(plan.surrogate.piecewise),
        },
    }
    if loaded.onnx_session is not None:
        model["onnx"] = {
            "conversion_max_abs_error": loaded.conversion_error,
            "rechecked": grid.onnx_checked,
            "disagreements": grid.onnx_disagreements,
            "notes": list(loaded.onnx_notes),
        }
    n, n_correct = grid.n_samples, grid.n_correct
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "attrib-audit", "version": __version__},
        "model": model,
        "data": {
            "source": cfg.data,
            "n_samples": n,
            "n_correct": n_correct,
            "n_nonfinite_logits": grid.n_nonfinite_logits,
            "clean_accuracy": n_correct / n if n else None,
        },
        "config": report_config(plan),
        "execution": grid.execution,
        "results": results,
        "summary": summary_table(results, cfg.metrics) if results else {},
    }
    if len(set(cfg.epsilons)) >= 2:
        report["auc"] = auc_table(results, cfg.metrics)
    if grid.adv_accuracy is not None:
        report["adversarial_accuracy"] = {repr(e): v for e, v in grid.adv_accuracy.items()}
    if grid.certification is not None:
        report["certification"] = certification_table(plan, grid.certification)
        for method, cert in report["certification"]["methods"].items():
            report["summary"].setdefault(method, {})["certified_topk"] = cert["certified_topk"][
                "mean"
            ]
    report = _json_safe(report)
    report["samples"] = _json_safe(grid.rows)
    problems = evidence_problems(report)
    report["evidence"] = {"conclusive": not problems, "problems": problems}
    gate = evaluate_gate(report, cfg.require, baseline=plan.baseline, max_drop=cfg.max_drop)
    samples = report.pop("samples")  # samples stay last in the file
    report["gate"] = gate
    report["samples"] = samples
    return report
