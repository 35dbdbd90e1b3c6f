from dataclasses import dataclass
from importlib import metadata

import pytest
import torch

from attrib_audit.errors import RegistryError
from attrib_audit.params import Params, setting
from attrib_audit.registry import METHODS, METRICS, Registry


def _fake_eps(monkeypatch, eps):
    monkeypatch.setattr(
        metadata, "entry_points", lambda group=None: [e for e in eps if e.group == group]
    )


def test_builtins_are_registered():
    assert {"sm", "ig", "sg", "ug"} <= set(METHODS.names())
    assert {
        "topk_intersection",
        "kendall",
        "spearman",
        "com_dislocation",
        "cosine_distance",
    } <= set(METRICS.names())
    assert METHODS.get("ig").facts.create_graph is True
    assert METHODS.get("ig").defaults == {
        "steps": 50,
        "method": "riemann_trapezoid",
        "baseline": "zeros",
    }
    assert METHODS.get("ig").source == "attrib-audit"


def test_a_duplicate_name_is_an_error_naming_both():
    reg = Registry("method", "none")
    reg.register("x", len, source="pkg-a")
    with pytest.raises(RegistryError, match="claimed twice: by pkg-a and by pkg-b"):
        reg.register("x", len, source="pkg-b")


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(
        RegistryError,
        match=r"unknown method 'igg' \(did you mean 'ig'\?\); "
        r"valid names: " + ", ".join(METHODS.names()) + "$",
    ):
        METHODS.get("igg")


def test_entry_points_load_and_a_broken_plugin_is_recorded(monkeypatch):
    group = "attrib_audit.test_group"
    eps = [
        metadata.EntryPoint("good", "torch:relu", group),
        metadata.EntryPoint("entry", "tests.test_registry:PLUGIN_ENTRY", group),
        metadata.EntryPoint("broken", "no_such_module_xyz:thing", group),
    ]
    _fake_eps(monkeypatch, eps)
    reg = Registry("metric", group)
    assert reg.names() == ["entry", "good"]
    assert reg.get("good").obj is torch.relu
    assert reg.get("entry").defaults == {"k": 3}
    assert reg.get("entry").facts.higher_is_robust is False
    assert len(reg.failures) == 1 and reg.failures[0].name == "broken"
    assert "ModuleNotFoundError" in reg.failures[0].error


def test_a_plugin_claiming_a_builtin_name_is_an_error(monkeypatch):
    _fake_eps(monkeypatch, [metadata.EntryPoint("ig", "torch:relu", "attrib_audit.methods")])
    METHODS.reset()
    try:
        with pytest.raises(RegistryError, match="claimed twice: by attrib-audit and by torch"):
            METHODS.names()
    finally:
        monkeypatch.undo()
        METHODS.reset()


def test_a_new_module_in_a_builtin_package_is_a_new_entry():
    """Built-ins are found by importing their package: no list to edit."""
    from attrib_audit.attributions import saliency

    assert METHODS.get("sm").obj is saliency
    assert METHODS.get("sm").facts.title == "Saliency map"


@dataclass(frozen=True)
class _PluginParams(Params):
    k: int = setting(3, "a setting", min=1)


def plugin_entry(a, b, *, k=3):
    return (a - b).abs().flatten(1).sum(1) * k


# a plugin module declares its entry with the same decorator as the built-ins; the entry
# point names the callable
PLUGIN_ENTRY = Registry("metric", "none").declare(
    "entry", params=_PluginParams, higher_is_robust=False
)(plugin_entry)
