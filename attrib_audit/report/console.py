"""Rich tables for the terminal: the audit summary, the gate, and before/after comparisons."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table


def _fmt(v: Any) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def summary_table(report: dict[str, Any]) -> Table:
    """Metrics as rows, methods as columns: fits a terminal whatever the metric names."""
    summary = report.get("summary", {})
    metrics = sorted({k for per in summary.values() for k in per})
    parts = []
    if report["results"]:
        eps = max(r["epsilon"] for r in report["results"])
        parts.append(f"worst case over attacks at epsilon {eps:.4g}")
    if "certification" in report:
        parts.append(f"certified_topk at L2 radius {report['certification']['radius']:.3g}")
    table = Table(
        title=f"{'; '.join(parts)} ({report['data']['n_correct']} correctly classified samples)",
        title_justify="left",
        min_width=64,
    )
    table.add_column("metric")
    for method in summary:
        table.add_column(method, justify="right")
    for m in metrics:
        table.add_row(m, *[_fmt(per.get(m)) for per in summary.values()])
    return table


def gate_table(report: dict[str, Any]) -> Table | None:
    checks = report.get("gate", {}).get("checks", [])
    if not checks:
        return None
    table = Table(title="gate", title_justify="left")
    for col in ("check", "value", "result"):
        table.add_column(col)
    for c in checks:
        value = _fmt(c["value"]) if not c.get("detail") else f"{_fmt(c['value'])}: {c['detail']}"
        table.add_row(
            escape(c["expr"]),
            escape(value),
            "[green]pass[/]" if c["passed"] else "[bold red]FAIL[/]",
        )
    return table


def compare_table(a: dict[str, Any], b: dict[str, Any], name_a: str, name_b: str) -> Table:
    """Summary metrics of two reports side by side, with the change."""
    table = Table(title=f"{name_a} -> {name_b}", title_justify="left")
    for col in ("method", "metric", name_a, name_b, "change"):
        table.add_column(col, justify="left" if col in ("method", "metric") else "right")
    sa, sb = a.get("summary", {}), b.get("summary", {})
    for method in sorted(set(sa) | set(sb)):
        metrics = sorted(set(sa.get(method, {})) | set(sb.get(method, {})))
        for m in metrics:
            va, vb = sa.get(method, {}).get(m), sb.get(method, {}).get(m)
            change = "" if va is None or vb is None else f"{vb - va:+.3f}"
            table.add_row(method, m, _fmt(va), _fmt(vb), change)
    for key in ("clean_accuracy",):
        va, vb = a["data"].get(key), b["data"].get(key)
        change = "" if va is None or vb is None else f"{vb - va:+.3f}"
        table.add_row("", key, _fmt(va), _fmt(vb), change)
    return table
