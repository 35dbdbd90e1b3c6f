"""Every parser of user text, fuzzed: any input gives a valid value or the library's own error
(never another exception, which the command line would report as a bug)."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attrib_audit.errors import AttribAuditError
from attrib_audit.models.arch import is_known, parse_arch
from attrib_audit.models.card import ModelCard, parse_floats, parse_ints, tomllib
from attrib_audit.params import build, parse_assignments
from attrib_audit.registry import ATTACKS, METHODS, OBJECTIVES
from attrib_audit.report.gate import evaluate_gate, load_report, parse_expr
from attrib_audit.training import parse_params

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# text that looks like what people type: digits, separators, operators, names, odd characters
TYPED = st.text(
    alphabet=st.sampled_from(list("0123456789.,/-+eE naifINF:()=_'\"[]{}<>#\\x")), max_size=40
)
TEXT = st.one_of(TYPED, st.text(max_size=40))


def _either(fn, text):
    try:
        return fn(text)
    except AttribAuditError:
        return None


@FUZZ
@given(TEXT)
def test_epsilon_lists(text):
    values = _either(lambda t: parse_floats(t, "--epsilon"), text)
    assert values is None or (values and all(math.isfinite(v) for v in values))


@FUZZ
@given(TEXT)
def test_shapes(text):
    shape = _either(lambda t: parse_ints(t, "--input-shape"), text)
    if shape is not None:
        card = _either(lambda s: ModelCard(input_shape=s), shape)
        assert card is None or (len(shape) == 3 and min(shape) >= 1)


@FUZZ
@given(TEXT)
def test_value_ranges(text):
    vr = _either(lambda t: parse_floats(t, "--value-range"), text)
    if vr is not None:
        card = _either(lambda v: ModelCard(value_range=v), vr)
        assert card is None or (len(vr) == 2 and vr[0] < vr[1])


@FUZZ
@given(
    st.one_of(
        TEXT,
        st.builds(
            lambda a, op, n: f"{a}{op}{n}", TEXT, st.sampled_from([">=", "<=", ">", "<", "="]), TEXT
        ),
    )
)
def test_require_expressions(text):
    parsed = _either(parse_expr, text)
    if parsed is None:
        return
    method, metric, op, value = parsed
    assert op in (">=", "<=", ">", "<") and isinstance(value, float)
    report = {
        "schema_version": 1,
        "data": {"n_correct": 1, "clean_accuracy": 1.0},
        "summary": {"ig": {"kendall": 0.5}},
        "adversarial_accuracy": {"0.1": 0.5},
    }
    gate = _either(lambda t: evaluate_gate(report, [t]), text)
    assert gate is None or isinstance(gate["passed"], bool)


@FUZZ
@given(st.one_of(TEXT, st.builds(lambda a, b, c: f"{a}:{b}({c})", TEXT, TEXT, TEXT)))
def test_arch_specs(text):
    parsed = _either(parse_arch, text)
    if parsed is not None:
        where, factory, kwargs, weights = parsed
        assert where and factory.isidentifier() and isinstance(kwargs, dict)
        assert weights is None or where in ("torchvision", "timm")
        assert isinstance(is_known(text), bool)  # decided without importing anything


TOML_VALUES = st.recursive(
    st.one_of(st.integers(), st.floats(), st.text(max_size=8), st.booleans()),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
FIELDS = st.sampled_from(
    ["input_shape", "value_range", "mean", "std", "classes", "arch", "arch_kwargs", "name", "x"]
)


@FUZZ
@given(st.dictionaries(FIELDS, TOML_VALUES, max_size=5))
def test_card_tables(table):
    card = _either(ModelCard.from_dict, table)
    assert card is None or isinstance(card, ModelCard)


@FUZZ
@given(TEXT)
def test_card_toml_text(text):
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return
    card = _either(ModelCard.from_dict, table)
    assert card is None or isinstance(card, ModelCard)


# every settings class there is, with its fields' types and ranges
SETTINGS = sorted(
    {e.params for r in (METHODS, ATTACKS, OBJECTIVES) for e in r}, key=lambda c: c.__name__
)


@FUZZ
@given(st.lists(TEXT, max_size=3), st.sampled_from(SETTINGS))
def test_param_values(items, cls):
    import dataclasses
    import typing

    params = _either(parse_params, items)
    if params is None:
        return
    built = _either(lambda p: build(cls, p, owner="x"), params)
    if built is None:
        return
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(built):
        v = getattr(built, f.name)
        if hints[f.name] is float:
            assert isinstance(v, float) and math.isfinite(v)
        if hints[f.name] is int:
            assert isinstance(v, int) and not isinstance(v, bool)


@FUZZ
@given(st.lists(TEXT, max_size=3))
def test_setting_assignments(items):
    found = _either(lambda i: parse_assignments(i, flag="--method-param"), items)
    assert found is None or all(isinstance(v, dict) for v in found.values())


@FUZZ
@given(st.binary(max_size=200))
def test_report_files(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("r") / "report.json"
    path.write_bytes(data)
    report = _either(load_report, path)
    assert report is None or (isinstance(report, dict) and isinstance(report["summary"], dict))


@pytest.mark.parametrize("text", ["1e999", "nan", "inf", "-inf", "1/0", "0/0", "8/255/2"])
def test_no_non_finite_number_gets_through(text):
    with pytest.raises(AttribAuditError):
        parse_floats(text, "--epsilon")
