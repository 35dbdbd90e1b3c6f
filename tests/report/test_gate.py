import pytest

from attrib_audit.errors import AttribAuditError
from attrib_audit.report.gate import evaluate_gate, parse_expr

REPORT = {
    "schema_version": 1,
    "data": {"clean_accuracy": 0.95, "n_samples": 20, "n_correct": 19},
    "summary": {
        "sm": {"topk_intersection": 0.40, "kendall": 0.30, "com_dislocation": 2.0},
        "ig": {"topk_intersection": 0.70, "kendall": 0.60, "com_dislocation": 1.0},
    },
    "adversarial_accuracy": {"0.1": 0.5, "0.2": 0.2},
}


@pytest.mark.parametrize(
    "expr,value,passed",
    [
        ("topk_intersection>=0.5", 0.40, False),  # every method: the worst decides
        ("topk_intersection>=0.4", 0.40, True),
        ("ig.topk_intersection>=0.5", 0.70, True),  # method prefix
        ("sm.kendall > 0.3", 0.30, False),  # strict
        ("com_dislocation<=1.5", 2.0, False),  # <= takes the largest
        ("ig.com_dislocation<=1.5", 1.0, True),
        ("kendall<0.7", 0.60, True),
        ("clean_accuracy>=0.9", 0.95, True),
        ("adversarial_accuracy>=0.3", 0.2, False),  # the lowest over epsilons
    ],
)
def test_gate_semantics(expr, value, passed):
    gate = evaluate_gate(REPORT, [expr])
    (check,) = gate["checks"]
    assert check["value"] == pytest.approx(value) and check["passed"] is passed
    assert gate["passed"] is passed


def test_all_checks_must_pass():
    gate = evaluate_gate(REPORT, ["ig.kendall>=0.5", "sm.kendall>=0.5"])
    assert [c["passed"] for c in gate["checks"]] == [True, False] and not gate["passed"]
    assert evaluate_gate(REPORT, []) == {"passed": True, "checks": []}


@pytest.mark.parametrize(
    "expr,needle",
    [
        ("topk_intersection=>0.5", "malformed"),
        ("topk>=0.5", "valid metrics: com_dislocation, kendall, topk_intersection"),
        ("ug.kendall>=0.5", "audited methods: ig, sm"),
        ("sm.clean_accuracy>=0.5", "takes no method prefix"),
        ("kendall>=abc", "malformed"),
    ],
)
def test_bad_expressions_name_what_is_valid(expr, needle):
    with pytest.raises(AttribAuditError, match=needle):
        evaluate_gate(REPORT, [expr])


def test_baseline_drop(tmp_path):
    import json

    old = {
        **REPORT,
        "summary": {
            "sm": {"topk_intersection": 0.50, "com_dislocation": 1.5},
            "ig": {"topk_intersection": 0.72, "com_dislocation": 1.0},
        },
    }
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    gate = evaluate_gate(REPORT, [], baseline=path, max_drop=0.05)
    checks = {c["expr"]: c for c in gate["checks"]}
    sm_topk = checks["baseline: sm.topk_intersection drop <= 0.05"]
    assert sm_topk["value"] == pytest.approx(0.10) and not sm_topk["passed"]
    assert checks["baseline: ig.topk_intersection drop <= 0.05"]["passed"]
    # lower is robust for com_dislocation: 1.5 -> 2.0 is a drop of 0.5
    assert checks["baseline: sm.com_dislocation drop <= 0.05"]["value"] == pytest.approx(0.5)
    assert not gate["passed"]
    assert evaluate_gate(REPORT, [], baseline=path, max_drop=0.6)["passed"]


def test_max_drop_needs_a_baseline():
    with pytest.raises(AttribAuditError, match="max_drop needs a baseline report to compare"):
        evaluate_gate(REPORT, [], max_drop=0.1)


def test_parse_expr():
    assert parse_expr(" ig.kendall >= .3 ") == ("ig", "kendall", ">=", 0.3)
    assert parse_expr("topk_intersection<1e-1") == (None, "topk_intersection", "<", 0.1)
