"""The CI gate: ``--require`` expressions on the summary, and regressions against a baseline.

An expression is ``[method.]metric OP number`` with OP one of ``>= <= > <``; without a method
prefix it must hold for every audited method (its value is the worst of them). The metrics are
the report's summary metrics, plus ``clean_accuracy`` and ``adversarial_accuracy`` (the lowest
over epsilons), which take no prefix.
"""

from __future__ import annotations

import json
import math
import operator
import re
from pathlib import Path
from typing import Any

from attrib_audit.errors import AttribAuditError, SettingError

OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}
_EXPR = re.compile(
    r"^\s*(?:(?P<method>[A-Za-z0-9_\-]+)\.)?(?P<metric>[A-Za-z0-9_\-]+)\s*"
    r"(?P<op>>=|<=|>|<)\s*(?P<value>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$"
)
GLOBAL = ("clean_accuracy", "adversarial_accuracy")


def parse_expr(expr: str) -> tuple[str | None, str, str, float]:
    m = _EXPR.match(expr)
    if not m:
        raise SettingError(
            "require",
            f"expression {expr!r} is malformed; use [method.]metric OP number with OP "
            "one of >=, <=, >, <, e.g. 'topk_intersection>=0.5' or 'ig.kendall>=0.3'",
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
            value = report.get("data", {}).get("clean_accuracy")
        else:
            adv = report.get("adversarial_accuracy")
            if not adv:
                raise AttribAuditError(
                    f"{expr!r} needs adversarial accuracy; audit with {{adv_accuracy}}",
                    refs=("adv_accuracy",),
                )
            vals = list(adv.values())
            value = None if any(v is None for v in vals) else min(vals)
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


def load_report(path: str | Path, *, what: str = "report") -> dict[str, Any]:
    """A report.json, checked for the fields the gate reads (it may come from anyone)."""
    path = Path(path)
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise AttribAuditError(f"cannot read {what} {path}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise AttribAuditError(f"{what} {path} is not JSON: {exc}") from None
    if not isinstance(report, dict) or report.get("schema_version") != 1:
        raise AttribAuditError(f"{what} {path} is not an attrib-audit report (schema_version 1)")
    problem = _shape_problem(report)
    if problem:
        raise AttribAuditError(f"{what} {path} is malformed: {problem}")
    return report


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _shape_problem(report: dict[str, Any]) -> str | None:
    """The first field the gate reads that does not have the report's shape, or None."""
    summary = report.get("summary")
    if not isinstance(summary, dict):
        return "summary is not a table"
    for method, per in summary.items():
        if not isinstance(per, dict):
            return f"summary.{method} is not a table"
        for metric, v in per.items():
            if v is not None and not _number(v):
                return f"summary.{method}.{metric} is {v!r:.40}, not a number"
    data = report.get("data")
    if not isinstance(data, dict):
        return "data is not a table"
    for key in ("n_samples", "n_correct"):
        if key in data and not (isinstance(data[key], int) and not isinstance(data[key], bool)):
            return f"data.{key} is {data[key]!r:.40}, not a count"
    acc = data.get("clean_accuracy")
    if acc is not None and not _number(acc):
        return f"data.clean_accuracy is {acc!r:.40}, not a number"
    adv = report.get("adversarial_accuracy")
    if adv is not None and (
        not isinstance(adv, dict) or not all(v is None or _number(v) for v in adv.values())
    ):
        return "adversarial_accuracy is not a table of numbers"
    samples = report.get("samples", [])
    if not isinstance(samples, list) or not all(isinstance(r, dict) for r in samples):
        return "samples is not a list of rows"
    return None


def evidence_problems(report: dict[str, Any]) -> list[str]:
    """Why the report's numbers are no evidence, or [] when they are: no audited sample,
    non-finite logits, maps or metric values. Read from the report's facts, not from a claim
    it makes, so it holds for any report handed to the gate."""
    problems = []
    data = report.get("data", {})
    if not data.get("n_correct"):
        problems.append("no sample was audited (none was classified correctly)")
    if data.get("n_nonfinite_logits"):
        problems.append(f"{data['n_nonfinite_logits']} sample(s) gave non-finite logits")
    summary = report.get("summary", {})
    if not summary:
        problems.append("the summary is empty")
    values = [(f"{m}.{k}", v) for m, per in sorted(summary.items()) for k, v in per.items()]
    missing = [name for name, v in values if v is None]
    if missing:
        problems.append(f"no finite value for {', '.join(missing[:4])}")
    infinite = [name for name, v in values if v is not None and not math.isfinite(v)]
    if infinite:
        problems.append(f"summary {', '.join(infinite[:4])} is not finite")
    metrics = (report.get("config") or {}).get("metrics") or []
    # a flat clean map ranks nothing, so its metrics are undefined, not missing: the summary
    # leaves it out, and a method with nothing but flat maps has no finite value above
    rows = [r for r in report.get("samples", []) if r.get("flat_map") is not True]
    bad = sum(1 for r in rows for k in metrics if k in r and r[k] is None)
    if bad:
        problems.append(f"{bad} per-sample metric value(s) are missing (non-finite maps)")
    return problems


def _baseline_checks(report: dict, baseline: dict, max_drop: float) -> list[dict[str, Any]]:
    from attrib_audit.registry import METRICS

    checks = []
    old, new = baseline.get("summary", {}), report.get("summary", {})
    for method in sorted(set(old) & set(new)):
        for metric in sorted(set(old[method]) & set(new[method])):
            a, b = old[method][metric], new[method][metric]
            if not (_number(a) and _number(b) and math.isfinite(a) and math.isfinite(b)):
                if b is not None or a is not None:  # a value that is not there cannot pass
                    checks.append(
                        {
                            "expr": f"baseline: {method}.{metric} drop <= {max_drop:g}",
                            "value": None,
                            "passed": False,
                            "detail": "no finite value to compare",
                        }
                    )
                continue
            higher = METRICS.get(metric).facts.higher_is_robust if metric in METRICS else True
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
    if not checks:
        checks.append(
            {
                "expr": "baseline: shares a summary metric with this audit",
                "value": None,
                "passed": False,
                "detail": "the baseline report has no method and metric in common with it",
            }
        )
    return checks


def evaluate_gate(
    report: dict,
    require: list[str],
    *,
    baseline: str | Path | dict | None = None,
    max_drop: float | None = None,
) -> dict[str, Any]:
    """``{passed, checks: [{expr, value, passed}]}``; bad expressions raise (exit code 2).

    ``baseline`` is a report or its path. When there are checks and the report's evidence is
    not conclusive (:func:`evidence_problems`), a failing check says why: a gate never passes
    on numbers that are not there.
    """
    checks = [_check(report, expr) for expr in require]
    if baseline is not None:
        old = baseline if isinstance(baseline, dict) else load_report(baseline, what="baseline")
        checks += _baseline_checks(report, old, 0.0 if max_drop is None else max_drop)
    elif max_drop is not None:
        raise SettingError(
            "max_drop", "needs a baseline report to compare with: {baseline}", refs=("baseline",)
        )
    problems = evidence_problems(report)
    if checks and problems:
        checks.append(
            {
                "expr": "the evidence is conclusive",
                "value": None,
                "passed": False,
                "detail": "; ".join(problems),
            }
        )
    return {"passed": all(c["passed"] for c in checks), "checks": checks}
