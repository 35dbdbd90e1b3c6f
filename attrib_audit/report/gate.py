"""The CI gate: ``--require`` expressions on the summary, and regressions against a baseline.

An expression is ``[method.]metric OP number`` with OP one of ``>= <= > <``; without a method
prefix it must hold for every audited method (its value is the worst of them). The metrics are
the report's summary metrics, plus ``clean_accuracy`` and ``adversarial_accuracy`` (the lowest
over epsilons), which take no prefix.
"""

from __future__ import annotations

import json
import operator
import re
from pathlib import Path
from typing import Any

from attrib_audit.errors import AttribAuditError

OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}
_EXPR = re.compile(
    r"^\s*(?:(?P<method>[A-Za-z0-9_\-]+)\.)?(?P<metric>[A-Za-z0-9_\-]+)\s*"
    r"(?P<op>>=|<=|>|<)\s*(?P<value>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$"
)
GLOBAL = ("clean_accuracy", "adversarial_accuracy")


def parse_expr(expr: str) -> tuple[str | None, str, str, float]:
    m = _EXPR.match(expr)
    if not m:
        raise AttribAuditError(
            f"malformed --require expression {expr!r}; use [method.]metric OP number with OP "
            "one of >=, <=, >, <, e.g. 'topk_intersection>=0.5' or 'ig.kendall>=0.3'"
        )
    return m["method"], m["metric"], m["op"], float(m["value"])


def _check(report: dict, expr: str) -> dict[str, Any]:
    method, metric, op, threshold = parse_expr(expr)
    summary = report.get("summary", {})
    methods = sorted(summary)
    if metric in GLOBAL:
        if method is not None:
            raise AttribAuditError(f"{metric} takes no method prefix (in {expr!r})")
        if metric == "clean_accuracy":
            value = report["data"]["clean_accuracy"]
        else:
            adv = report.get("adversarial_accuracy")
            if not adv:
                raise AttribAuditError(
                    f"{expr!r} needs adversarial accuracy; audit with --adv-accuracy"
                )
            value = min(adv.values())
        passed = value is not None and OPS[op](value, threshold)
        return {"expr": expr, "value": value, "passed": bool(passed)}
    metrics = sorted({k for per in summary.values() for k in per})
    if metric not in metrics:
        raise AttribAuditError(
            f"unknown metric {metric!r} in {expr!r}; valid metrics: "
            f"{', '.join(metrics + list(GLOBAL))}"
        )
    if method is not None and method not in summary:
        raise AttribAuditError(
            f"method {method!r} in {expr!r} was not audited; audited methods: {', '.join(methods)}"
        )
    targets = [method] if method is not None else methods
    per = {m: summary[m].get(metric) for m in targets}
    ok = {m: v is not None and bool(OPS[op](v, threshold)) for m, v in per.items()}
    # the value shown is the one that decides: the worst for the comparison's direction
    known = [v for v in per.values() if v is not None]
    worst = (min if op in (">=", ">") else max)(known) if known else None
    return {"expr": expr, "value": worst, "passed": all(ok.values()), "per_method": per}


def validate_require(require: list[str], methods: list[str], metrics: list[str]) -> None:
    """Check expressions before an audit runs, so a typo fails at once (exit code 2)."""
    stub = {
        "data": {"clean_accuracy": 1.0},
        "adversarial_accuracy": {"0": 1.0},
        "summary": {m: dict.fromkeys(metrics, 0.0) for m in methods},
    }
    for expr in require:
        _check(stub, expr)


def load_report(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        report = json.loads(path.read_text())
    except OSError as exc:
        raise AttribAuditError(f"cannot read report {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise AttribAuditError(f"{path} is not JSON: {exc}") from None
    if not isinstance(report, dict) or report.get("schema_version") != 1:
        raise AttribAuditError(f"{path} is not an attrib-audit report (schema_version 1)")
    return report


def _baseline_checks(report: dict, baseline: dict, max_drop: float) -> list[dict[str, Any]]:
    from attrib_audit.registry import METRICS

    checks = []
    old, new = baseline.get("summary", {}), report.get("summary", {})
    for method in sorted(set(old) & set(new)):
        for metric in sorted(set(old[method]) & set(new[method])):
            a, b = old[method][metric], new[method][metric]
            if a is None or b is None:
                continue
            higher = (
                METRICS.get(metric).meta.get("higher_is_robust", True)
                if metric in METRICS
                else True
            )
            drop = (a - b) if higher else (b - a)
            checks.append(
                {
                    "expr": f"baseline: {method}.{metric} drop <= {max_drop:g}",
                    "value": drop,
                    "passed": drop <= max_drop,
                    "baseline": a,
                    "current": b,
                }
            )
    return checks


def evaluate_gate(
    report: dict,
    require: list[str],
    *,
    baseline: str | Path | None = None,
    max_drop: float | None = None,
) -> dict[str, Any]:
    """``{passed, checks: [{expr, value, passed}]}``; bad expressions raise (exit code 2)."""
    checks = [_check(report, expr) for expr in require]
    if baseline is not None:
        checks += _baseline_checks(report, load_report(baseline), max_drop or 0.0)
    elif max_drop is not None:
        raise AttribAuditError("--max-drop needs --baseline OLD.json")
    return {"passed": all(c["passed"] for c in checks), "checks": checks}
