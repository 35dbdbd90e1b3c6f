"""The command line: parses options, calls the library, renders with Rich. No logic here."""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from attrib_audit.device import resolve_device
from attrib_audit.errors import AttribAuditError

app = typer.Typer(
    name="attrib-audit",
    help="Audit, fix and gate the robustness of gradient attributions of image classifiers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)
_state = {"debug": False}

# ---- shared options ------------------------------------------------------------------------
ModelArg = Annotated[
    Path,
    typer.Argument(
        help="Checkpoint: .pt/.pth, .safetensors, TorchScript or .onnx.", show_default=False
    ),
]
ArchOpt = Annotated[
    str | None,
    typer.Option(
        "--arch",
        help="Architecture for weight files: torchvision:resnet18(num_classes=10), "
        "pkg.module:factory or path/file.py:factory.",
    ),
]
CardOpt = Annotated[
    Path | None,
    typer.Option("--card", help="Model card TOML (default: the sidecar next to the checkpoint)."),
]
ShapeOpt = Annotated[
    str | None, typer.Option("--input-shape", help="Input shape C,H,W, e.g. 1,28,28.")
]
RangeOpt = Annotated[
    str | None, typer.Option("--value-range", help="Input value range lo,hi, e.g. 0,1.")
]
MeanOpt = Annotated[
    str | None,
    typer.Option("--mean", help="Per-channel normalisation mean, e.g. 0.485,0.456,0.406."),
]
StdOpt = Annotated[str | None, typer.Option("--std", help="Per-channel normalisation std.")]
ClassesOpt = Annotated[str | None, typer.Option("--classes", help="Comma-separated class names.")]
TrustOpt = Annotated[
    bool,
    typer.Option(
        "--trust-checkpoint",
        help="Allow unpickling a fully pickled module (runs code from the file).",
    ),
]
SamplesOpt = Annotated[int | None, typer.Option("--samples", help="Use the first N samples.")]
BatchOpt = Annotated[int, typer.Option("--batch-size", help="Samples per batch.")]
MaxBatchOpt = Annotated[
    int | None,
    typer.Option(
        "--max-batch",
        help="Largest batch given to the model (IG steps and noise samples are folded "
        "into the batch).",
    ),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed for every random choice.")]
BetaOpt = Annotated[
    float, typer.Option("--beta", help="Softplus sharpness of the smooth surrogate.")
]


def _load_config(ctx: typer.Context, _param, path: Path | None) -> Path | None:
    """``--config FILE``: a TOML table of this command's options, used as their defaults
    (flags given on the command line still win)."""
    if path is None:
        return None
    from attrib_audit.models.card import tomllib

    try:
        table = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        _fail(f"cannot read config {path}: {exc.strerror}")
    except tomllib.TOMLDecodeError as exc:
        _fail(f"config {path} is not valid TOML: {exc}")
    names = {p.name for p in ctx.command.params}
    values = {k.replace("-", "_"): v for k, v in table.items()}
    unknown = sorted(set(values) - names)
    if unknown:
        valid = ", ".join(sorted(n.replace("_", "-") for n in names if n != "config"))
        _fail(f"config {path}: unknown option(s) {', '.join(unknown)}; valid: {valid}")
    ctx.default_map = {**(ctx.default_map or {}), **values}
    return path


ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="TOML file holding any of this command's options (flags still win).",
        is_eager=True,
        callback=_load_config,
    ),
]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")]


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def run(fn: Callable[[], Any]) -> Any:
    """Call the library; a bad input becomes one line on stderr and exit code 2."""
    try:
        return fn()
    except (AttribAuditError, ValueError) as exc:
        if _state["debug"]:
            traceback.print_exc()
        _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    except KeyboardInterrupt:
        err.print("interrupted")
        raise typer.Exit(130) from None


def _load(model: Path, arch, card, input_shape, value_range, mean, std, classes, trust):
    from attrib_audit.models import load_model
    from attrib_audit.models.card import parse_floats, parse_ints

    return load_model(
        model,
        arch=arch,
        card=card,
        input_shape=parse_ints(input_shape, "--input-shape") if input_shape else None,
        value_range=parse_floats(value_range, "--value-range") if value_range else None,
        mean=parse_floats(mean, "--mean") if mean else None,
        std=parse_floats(std, "--std") if std else None,
        classes=tuple(c.strip() for c in classes.split(",")) if classes else None,
        trust=trust,
    )


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    _state["debug"] = debug
    if version:
        from attrib_audit import __version__

        out.print(f"attrib-audit {__version__}")
        raise typer.Exit(0)


@app.command()
def inspect(
    model: ModelArg,
    arch: ArchOpt = None,
    card: CardOpt = None,
    input_shape: ShapeOpt = None,
    value_range: RangeOpt = None,
    mean: MeanOpt = None,
    std: StdOpt = None,
    classes: ClassesOpt = None,
    trust_checkpoint: TrustOpt = False,
    data: Annotated[
        str | None,
        typer.Option(
            "--data", help="Measure surrogate agreement on this data (default: uniform noise)."
        ),
    ] = None,
    samples: SamplesOpt = 64,
    beta: BetaOpt = 10.0,
    device: DeviceOpt = "auto",
    config: ConfigOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the result as JSON on stdout.")
    ] = False,
) -> None:
    """Format, model card, input shape, activations and surrogate agreement of a model."""
    from attrib_audit.models.inspection import inspect_model

    def go():
        dev = resolve_device(device)
        loaded = _load(
            model, arch, card, input_shape, value_range, mean, std, classes, trust_checkpoint
        )
        x = None
        if data is not None:
            from attrib_audit.data import load_data

            src = load_data(
                data,
                input_shape=loaded.card.input_shape,
                value_range=loaded.card.value_range,
                classes=loaded.card.classes,
                samples=samples,
            )
            x = next(src.batches(len(src)))[0]
        return inspect_model(loaded, beta=beta, x=x, device=dev)

    info = run(go)
    if as_json:
        sys.stdout.write(json.dumps(info, indent=2) + "\n")
        return
    table = Table(title=f"{info['path']}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("format", info["format"])
    table.add_row("sha256", info["sha256"])
    for key, value in info["card"].items():
        table.add_row(key, str(value))
    table.add_row("parameters", f"{info['parameters']:,}")
    table.add_row(
        "activation modules",
        ", ".join(f"{k} x{v}" for k, v in info["activation_modules"].items()) or "none",
    )
    if info["functional_relu_calls"]:
        table.add_row("functional ReLU calls", "\n".join(info["functional_relu_calls"]))
    if info["onnx_conversion_max_abs_error"] is not None:
        table.add_row(
            "ONNX conversion",
            f"max |logit diff| vs onnxruntime {info['onnx_conversion_max_abs_error']:.2e}",
        )
    s = info["surrogate"]
    table.add_row(
        "surrogate",
        f"softplus beta={s['beta']:g}: {s['replaced']} module(s) replaced, "
        f"{len(s['remaining_relus'])} ReLU(s) left",
    )
    for where in s["remaining_relus"]:
        table.add_row("", f"[yellow]not replaced: {where}[/]")
    table.add_row(
        "surrogate agreement",
        f"predictions {s['prediction_agreement']:.1%}, saliency cosine "
        f"{s['map_cosine']:.3f} ({s['measured_on']})",
    )
    out.print(table)


@app.command()
def attribute(
    model: ModelArg,
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="Images, a folder, an .npz/.pt file or a built-in data set "
            "(digits, fashion-mnist:test).",
            show_default=False,
        ),
    ],
    method: Annotated[
        str, typer.Option("--method", help="Attribution method (see `attrib-audit plugins`).")
    ] = "ig",
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder for NNNN.png heatmaps and NNNN.npy maps.")
    ] = Path("attributions"),
    arch: ArchOpt = None,
    card: CardOpt = None,
    input_shape: ShapeOpt = None,
    value_range: RangeOpt = None,
    mean: MeanOpt = None,
    std: StdOpt = None,
    classes: ClassesOpt = None,
    trust_checkpoint: TrustOpt = False,
    samples: SamplesOpt = None,
    batch_size: BatchOpt = 32,
    max_batch: MaxBatchOpt = None,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    config: ConfigOpt = None,
    explain: Annotated[
        str, typer.Option("--explain", help="Quantity explained: logit, probability or loss.")
    ] = "logit",
    reduce: Annotated[
        str, typer.Option("--reduce", help="Channel reduction for the heatmap: sum-abs, sum or l2.")
    ] = "sum-abs",
    ig_steps: Annotated[
        int | None, typer.Option("--ig-steps", help="IG: points on the path.")
    ] = None,
    ig_method: Annotated[
        str | None,
        typer.Option(
            "--ig-method", help="IG quadrature: riemann_left/right/middle/trapezoid, gausslegendre."
        ),
    ] = None,
    baseline: Annotated[
        str | None, typer.Option("--baseline", help="IG baseline: zeros, blur or uniform.")
    ] = None,
    sg_samples: Annotated[
        int | None, typer.Option("--sg-samples", help="SmoothGrad: noise samples.")
    ] = None,
    sg_sigma: Annotated[
        float | None,
        typer.Option("--sg-sigma", help="SmoothGrad: noise std as a fraction of the value range."),
    ] = None,
    ug_samples: Annotated[
        int | None, typer.Option("--ug-samples", help="UniformGrad: noise samples.")
    ] = None,
    ug_radius: Annotated[
        float | None,
        typer.Option("--ug-radius", help="UniformGrad: radius as a fraction of the value range."),
    ] = None,
) -> None:
    """Attribution maps of a model for some inputs, as heatmap PNGs and .npy arrays."""
    from attrib_audit.api import attribute_to_dir
    from attrib_audit.data import load_data

    params = {
        "ig": {"steps": ig_steps, "method": ig_method, "baseline": baseline},
        "sg": {"samples": sg_samples, "sigma": sg_sigma},
        "ug": {"samples": ug_samples, "radius": ug_radius},
    }.get(method, {})

    def go():
        dev = resolve_device(device)
        loaded = _load(
            model, arch, card, input_shape, value_range, mean, std, classes, trust_checkpoint
        )
        source = inputs[0] if len(inputs) == 1 else inputs
        data = load_data(
            source,
            input_shape=loaded.card.input_shape,
            value_range=loaded.card.value_range,
            classes=loaded.card.classes,
            samples=samples,
        )
        settings = {**params, "explain": explain, "max_batch": max_batch, "seed": seed}
        return attribute_to_dir(
            loaded,
            data,
            out_dir,
            method=method,
            reduce=reduce,
            batch_size=batch_size,
            params=settings,
            device=dev,
        )

    rows = run(go)
    table = Table(title=f"{method} maps written to {out_dir}", title_justify="left")
    for col in ("#", "label", "prediction", "heatmap"):
        table.add_column(col)
    for r in rows[:20]:
        table.add_row(
            str(r["index"]), "-" if r["label"] is None else str(r["label"]), r["class"], r["png"]
        )
    out.print(table)
    if len(rows) > 20:
        out.print(f"... and {len(rows) - 20} more")


@app.command()
def plugins() -> None:
    """Every registered method, attack, metric, objective and loader, with its source."""
    from attrib_audit.registry import REGISTRIES

    table = Table(title="registered entries", title_justify="left")
    for col in ("kind", "name", "source", "version", "create_graph"):
        table.add_column(col)
    failures = []
    for kind, registry in REGISTRIES.items():
        entries = run(lambda r=registry: list(r))
        for e in entries:
            cg = ("yes" if e.meta.get("create_graph") else "no") if kind == "method" else ""
            table.add_row(kind, e.name, e.source, e.version, cg)
        failures.extend((kind, f) for f in registry.failures)
    out.print(table)
    for kind, f in failures:
        err.print(
            f"[yellow]{kind} plugin {f.name!r} from {f.source} failed to load:[/] {f.error}",
            highlight=False,
        )


def main() -> None:
    app()
