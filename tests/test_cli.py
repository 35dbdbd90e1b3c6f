import importlib
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from attrib_audit.cli import app
from attrib_audit.models import sample_model

runner = CliRunner()
DIGITS = str(sample_model("digits-cnn", "pt"))


def test_inspect_the_bundled_model():
    result = runner.invoke(
        app, ["inspect", DIGITS, "--data", "digits", "--samples", "32", "--json"]
    )
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["format"] == "state_dict"
    assert info["card"]["input_shape"] == [1, 8, 8]
    assert info["activation_modules"] == {"ReLU": 3}
    s = info["surrogate"]
    assert s["replaced"] == 3 and s["remaining_relus"] == []
    assert s["prediction_agreement"] >= 0.9 and s["map_cosine"] > 0.9
    assert s["measured_on"] == "32 samples of data"


def test_inspect_onnx_renders_a_table():
    result = runner.invoke(app, ["inspect", str(sample_model("digits-cnn", "onnx"))])
    assert result.exit_code == 0, result.output
    assert "onnx" in result.stdout and "surrogate agreement" in result.stdout


@pytest.mark.parametrize("method", ["sm", "ig", "sg", "ug"])
def test_attribute_writes_png_and_npy(tmp_path, method):
    out = tmp_path / "maps"
    result = runner.invoke(
        app,
        [
            "attribute",
            DIGITS,
            "digits",
            "--samples",
            "3",
            "--method",
            method,
            "--out",
            str(out),
            *{
                "sg": ["--method-param", "sg.samples=4"],
                "ug": ["--method-param", "ug.samples=4"],
                "ig": ["--method-param", "ig.steps=8"],
            }.get(method, []),
        ],
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "0000.npy",
        "0000.png",
        "0001.npy",
        "0001.png",
        "0002.npy",
        "0002.png",
    ]
    m = np.load(out / "0000.npy")
    assert m.shape == (1, 8, 8) and np.isfinite(m).all() and np.abs(m).sum() > 0
    assert not list(out.glob(".*tmp"))


def test_attribute_matches_the_library(tmp_path):
    import torch

    from attrib_audit import attribute, load_model
    from attrib_audit.data import load_data

    out = tmp_path / "maps"
    runner.invoke(
        app, ["attribute", DIGITS, "digits", "--samples", "2", "--method", "ig", "--out", str(out)]
    )
    model = load_model(DIGITS)
    x = load_data("digits", input_shape=(1, 8, 8), value_range=(0, 1), samples=2).x
    expected = attribute(model, x, method="ig")
    np.testing.assert_allclose(np.load(out / "0001.npy"), expected[1].numpy(), rtol=1e-6)
    assert torch.isfinite(expected).all()


@pytest.mark.parametrize(
    "args,needle",
    [
        (["inspect", "no/such/model.pt"], "model file no/such/model.pt does not exist"),
        (["attribute", DIGITS, "no/such/dir"], "neither a file, a folder nor a built-in"),
        (["attribute", DIGITS, "digits", "--method", "nope"], "unknown method 'nope'"),
        (["inspect", DIGITS, "--value-range", "0,x"], "--value-range"),
        (["attribute", DIGITS, "digits", "--explain", "logits"], "explain must be one of"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, needle):
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], result.stderr
    assert "Traceback" not in result.output


def test_debug_shows_the_traceback():
    result = runner.invoke(app, ["--debug", "inspect", DIGITS, "--value-range", "0,x"])
    assert result.exit_code == 2 and "Traceback" in result.stderr


def test_plugins_lists_every_builtin():
    result = runner.invoke(app, ["plugins"])
    assert result.exit_code == 0
    for name in ("sm", "ig", "sg", "ug", "kendall", "topk_intersection", "onnx", "safetensors"):
        assert name in result.stdout


def test_api_attribute_rejects_a_misspelt_setting(digits_model):
    import torch

    from attrib_audit import attribute

    x = torch.zeros(1, 1, 8, 8)
    with pytest.raises(ValueError, match="method_params.ig.stesp is not a setting of ig"):
        attribute(digits_model, x, method="ig", stesp=4)
    # a setting of another method is refused too (it would be ignored); context every method
    # may take (seed, explain, max_batch) is passed only where it is taken
    with pytest.raises(
        ValueError, match="method_params.sm.steps is not a setting of sm; its settings: none"
    ):
        attribute(digits_model, x, method="sm", steps=4)
    assert attribute(digits_model, x, method="sm", seed=3).shape == x.shape
    with pytest.raises(ValueError, match="ig.steps must be >= 1"):
        attribute(digits_model, x, method="ig", steps=0)


def test_config_file_sets_options_and_flags_win(tmp_path):
    cfg = tmp_path / "audit.toml"
    cfg.write_text('method = "sm"\nsamples = 2\n')
    out = tmp_path / "maps"
    result = runner.invoke(
        app, ["attribute", DIGITS, "digits", "--config", str(cfg), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "sm maps" in result.stdout and len(list(out.glob("*.npy"))) == 2
    result = runner.invoke(
        app,
        [
            "attribute",
            DIGITS,
            "digits",
            "--config",
            str(cfg),
            "--samples",
            "1",
            "--out",
            str(tmp_path / "one"),
        ],
    )
    assert len(list((tmp_path / "one").glob("*.npy"))) == 1
    cfg.write_text("sample = 2\n")
    result = runner.invoke(app, ["attribute", DIGITS, "digits", "--config", str(cfg)])
    assert result.exit_code == 2 and "unknown option(s) sample" in result.stderr


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_a_clear_error():
    result = runner.invoke(app, ["inspect", DIGITS, "--device", "cuda"])
    assert result.exit_code == 2
    assert "no CUDA device is available" in result.stderr


@pytest.mark.gpu
def test_attribute_on_cuda_matches_cpu(tmp_path):
    for device in ("cpu", "cuda"):
        result = runner.invoke(
            app,
            [
                "attribute",
                DIGITS,
                "digits",
                "--samples",
                "4",
                "--method",
                "ig",
                "--device",
                device,
                "--out",
                str(tmp_path / device),
            ],
        )
        assert result.exit_code == 0, result.output
    np.testing.assert_allclose(
        np.load(tmp_path / "cuda" / "0003.npy"),
        np.load(tmp_path / "cpu" / "0003.npy"),
        rtol=1e-4,
        atol=1e-5,
    )


AUDIT_QUICK = [
    DIGITS,
    "--samples",
    "12",
    "--steps",
    "3",
    "--method-param",
    "ig.steps=4",
    "--epsilon",
    "2/255,8/255",
]


def test_audit_writes_three_reports(tmp_path):
    out = tmp_path / "r"
    result = runner.invoke(app, ["audit", *AUDIT_QUICK, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["junit.xml", "report.html", "report.json"]
    assert "topk_intersection" in result.stdout


@pytest.mark.parametrize(
    "expr,code",
    [
        ("topk_intersection>=0.999", 1),
        ("topk_intersection>=0", 0),
        ("topk_intersection=>0", 2),
        ("nope>=0", 2),
        ("ug.kendall>=0", 2),
    ],
)
def test_audit_exit_codes(tmp_path, expr, code):
    result = runner.invoke(app, ["audit", *AUDIT_QUICK, "--require", expr, "--out", str(tmp_path)])
    assert result.exit_code == code, result.output
    if code == 2:
        assert any(w in result.stderr for w in ("valid metrics", "malformed", "audited methods"))
        assert not (tmp_path / "report.json").exists()  # refused before any work


def test_gate_and_compare_commands(tmp_path):
    out = tmp_path / "r"
    runner.invoke(app, ["audit", *AUDIT_QUICK, "--out", str(out), "--format", "json"])
    report = str(out / "report.json")
    assert runner.invoke(app, ["gate", report, "--require", "kendall>=0"]).exit_code == 0
    junit = tmp_path / "g.xml"
    result = runner.invoke(
        app, ["gate", report, "--require", "kendall>=1.1", "--junit", str(junit)]
    )
    assert result.exit_code == 1 and "FAIL" in result.stdout and junit.is_file()
    assert runner.invoke(app, ["gate", report, "--baseline", report]).exit_code == 0
    assert runner.invoke(app, ["gate", report]).exit_code == 2
    assert (
        runner.invoke(
            app, ["gate", str(tmp_path / "none.json"), "--require", "kendall>=0"]
        ).exit_code
        == 2
    )
    result = runner.invoke(app, ["compare", report, report])
    assert result.exit_code == 0 and "+0.000" in result.stdout


def test_interrupted_audit_exits_130(tmp_path, monkeypatch):
    audit_module = importlib.import_module("attrib_audit.pipeline")

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(audit_module, "_attack_cell", boom)
    result = runner.invoke(app, ["audit", *AUDIT_QUICK, "--out", str(tmp_path)])
    assert result.exit_code == 130 and "--resume" in result.stderr
    assert not (tmp_path / "report.json").exists()


@pytest.mark.slow
def test_mnist_preset_gate_on_the_digits_model(tmp_path):
    args = [
        "audit",
        DIGITS,
        "--data",
        "digits",
        "--preset",
        "mnist",
        "--samples",
        "16",
        "--format",
        "json",
        "--out",
        str(tmp_path),
    ]
    assert runner.invoke(app, [*args, "--require", "topk_intersection>=0.99"]).exit_code == 1
    assert runner.invoke(app, [*args, "--require", "topk_intersection>=0"]).exit_code == 0


def test_version_and_a_missing_command():
    from attrib_audit import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"attrib-audit {__version__}"
    result = runner.invoke(app, ["--debug"])
    assert result.exit_code == 2 and "missing command" in result.stderr


def test_config_tables_and_flags_merge_setting_by_setting(tmp_path):
    cfg = tmp_path / "audit.toml"
    cfg.write_text('[methods.ig]\nsteps = 4\nmethod = "riemann_left"\n')
    base = ["audit", *AUDIT_QUICK[:5], "--epsilon", "8/255", "--attacks", "random"]
    base += ["--format", "json"]
    base += ["--config", str(cfg)]
    result = runner.invoke(
        app, [*base, "--method-param", "ig.steps=2", "--out", str(tmp_path / "a")]
    )
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "a" / "report.json").read_text())["config"]
    assert config["methods"] == {"ig": {"steps": 2, "method": "riemann_left", "baseline": "zeros"}}
    # --methods wins over the tables' choice; the unused table's settings are not used
    result = runner.invoke(app, [*base, "--methods", "sm", "--out", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "b" / "report.json").read_text())["config"]
    assert config["methods"] == {"sm": {}}


@pytest.mark.parametrize(
    "item, message",
    [
        ("sm.target=1", "--method-param sm.target is not a setting of sm; its settings: none"),
        ("ig.create_graph=False", "--method-param ig.create_graph is not a setting of ig"),
        ("ig.steps=0", "--method-param ig.steps must be >= 1, got 0"),
        ("igg.steps=3", "unknown method 'igg' (did you mean 'ig'?)"),
    ],
)
def test_attribute_refuses_what_is_not_a_setting_before_loading(tmp_path, item, message):
    method = item.split(".")[0] if not item.startswith("igg") else "ig"
    out = tmp_path / "maps"
    result = runner.invoke(
        app,
        [
            "attribute",
            DIGITS,
            "digits",
            "--method",
            method,
            "--method-param",
            item,
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 2, result.output
    assert message in result.stderr and result.stderr.count("\n") == 1 and not out.exists()
