"""Input x Gradient against Captum, IG's one-point rule, and its settings from every front."""

import json

import torch
from captum.attr import InputXGradient
from typer.testing import CliRunner

from attrib_audit.attributions import integrated_gradients, saliency
from attrib_audit.attributions.input_x_gradient import input_x_gradient
from attrib_audit.cli import app
from attrib_audit.models import sample_model
from attrib_audit.registry import METHODS
from attrib_audit.testing import tiny_model

DIGITS = str(sample_model("digits-cnn", "pt"))


def _inputs():
    g = torch.Generator().manual_seed(0)
    return torch.rand(4, 3, 8, 8, generator=g, dtype=torch.float64), torch.tensor([0, 1, 2, 3])


def test_matches_captum():
    model = tiny_model()
    x, t = _inputs()
    expected = InputXGradient(model).attribute(x.clone().requires_grad_(True), target=t)
    torch.testing.assert_close(input_x_gradient(model, x, t), expected.detach())


def test_is_igs_one_point_rule_from_a_zero_baseline_and_the_baseline_shifts_it():
    model = tiny_model()
    x, t = _inputs()
    one = integrated_gradients(model, x, t, steps=1, method="riemann_right")
    torch.testing.assert_close(input_x_gradient(model, x, t), one)
    shifted = input_x_gradient(model, x, t, baseline=0.25)
    torch.testing.assert_close(shifted, (x - 0.25) * saliency(model, x, t))


def test_second_order_through_the_map_passes_gradcheck():
    model = tiny_model(torch.nn.Softplus)
    x, t = _inputs()
    x = x[:1].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda z: input_x_gradient(model, z, t[:1], create_graph=True), (x,)
    )


def test_is_registered_with_its_setting():
    entry = METHODS.get("ixg")
    assert entry.obj is input_x_gradient and entry.defaults == {"baseline": 0.0}
    assert entry.facts.title == "Input x Gradient" and entry.facts.create_graph


def test_its_setting_reaches_the_maps_the_config_and_the_report(tmp_path):
    runner = CliRunner()
    maps = tmp_path / "maps"
    args = ["attribute", DIGITS, "digits", "--samples", "2", "--method", "ixg"]
    result = runner.invoke(app, [*args, "--method-param", "ixg.baseline=0.5", "--out", str(maps)])
    assert result.exit_code == 0, result.output
    config = tmp_path / "audit.toml"
    config.write_text("samples = 4\nsteps = 1\n[methods.ixg]\nbaseline = 0.5\n")
    out = tmp_path / "r"
    audit = ["audit", DIGITS, "--config", str(config), "--epsilon", "8/255", "--format", "json"]
    result = runner.invoke(app, [*audit, "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["methods"] == {"ixg": {"baseline": 0.5}}
    assert set(report["summary"]) == {"ixg"}
    result = runner.invoke(app, [*audit, "--method-param", "ixg.baseline=zero"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: --method-param ixg.baseline must be float, got 'zero'"
