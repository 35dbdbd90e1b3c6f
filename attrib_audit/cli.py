"""The command line: parses options, calls the library, renders with Rich. No logic here."""

from __future__ import annotations

import json
import sys
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from attrib_audit.errors import AttribAuditError, SettingError
from attrib_audit.registry import SECTIONS

try:  # newer typer carries its own click
    from typer._click.exceptions import ClickException, NoArgsIsHelpError
except ImportError:  # pragma: no cover
    from click.exceptions import ClickException, NoArgsIsHelpError
from typer import Abort

out = Console()
err = Console(stderr=True)
_state: dict[str, Any] = {"debug": False, "config_params": {}}


class _OneLineErrors(TyperGroup):
    """Usage errors (an unknown option, a value that is not a number) as one line on stderr
    and exit code 2, like every other bad input."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except NoArgsIsHelpError as exc:
            err.print(exc.format_message(), markup=False, highlight=False)
            sys.exit(exc.exit_code)
        except ClickException as exc:
            where = exc.ctx.command_path if getattr(exc, "ctx", None) else "attrib-audit"
            _say(f"error: {exc.format_message()} (see {where} --help)")
            sys.exit(exc.exit_code)
        except Abort:
            err.print("interrupted", markup=False)
            sys.exit(130)
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    name="attrib-audit",
    help="Audit, fix and gate the robustness of gradient attributions of image classifiers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=_OneLineErrors,
)

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
        "into the batch). Default: chunks of about 64k input elements on CPU, 4M on GPU; "
        "0: no chunking.",
        min=0,
    ),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed for every random choice.")]
BetaOpt = Annotated[
    float, typer.Option("--beta", help="Softplus sharpness of the smooth surrogate.")
]
ExplainOpt = Annotated[
    str, typer.Option("--explain", help="Quantity explained: logit, probability or loss.")
]
ReduceOpt = Annotated[
    str, typer.Option("--reduce", help="Channel reduction of the maps: sum-abs, sum or l2.")
]


def _param_opt(kind: str) -> Any:
    """``--method-param NAME.SETTING=VALUE`` (and the same for attacks and metrics)."""
    example = {"method": "ig.steps=16", "attack": "ifia-topk.restarts=2", "metric": "ssim.window=5"}
    return Annotated[
        list[str] | None,
        typer.Option(
            f"--{kind}-param",
            help=f"{'An' if kind == 'attack' else 'A'} {kind}'s setting as NAME.SETTING=VALUE, "
            f"e.g. {example[kind]} (repeatable; "
            f"`attrib-audit plugins` lists every {kind}'s settings).",
        ),
    ]


CertifyParamOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--certify-param",
        help="A certification setting as SETTING=VALUE: sigma, samples, n0, alpha, radius "
        "(repeatable), e.g. sigma=0.25.",
    ),
]


def _certify_settings(on: bool, items: list[str] | None) -> dict[str, Any] | None:
    """The certification's settings (None: no certification); a setting implies --certify."""
    from attrib_audit.params import text

    if not on and not items:
        return None
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise SettingError(
                "--certify-param",
                f"{item!r}: use SETTING=VALUE, e.g. --certify-param sigma=0.25",
                is_flag=True,
            )
        out[key.strip()] = text(value.strip())
    return out


AuditDataOpt = Annotated[
    str | None,
    typer.Option(
        "--data", help="Images folder, .npz/.pt, or a built-in (digits, fashion-mnist:test)."
    ),
]
MethodsOpt = Annotated[
    str | None, typer.Option("--methods", help="Comma-separated methods (default sm,ig).")
]
OutOpt = Annotated[Path, typer.Option("--out", help="Folder for the reports.")]
FormatOpt = Annotated[str, typer.Option("--format", help="Comma-separated: json, html, junit.")]
RequireOpt = Annotated[
    list[str] | None,
    typer.Option("--require", help="Gate expression, e.g. 'topk_intersection>=0.5' (repeatable)."),
]
CertifyOpt = Annotated[
    bool,
    typer.Option(
        "--certify",
        help="Also certify the top-k pixels by randomized smoothing (Anani et al. 2025): "
        "certified_topk, gated with --require.",
    ),
]
MethodParamOpt = _param_opt("method")
AttackParamOpt = _param_opt("attack")
MetricParamOpt = _param_opt("metric")
# config-file tables of entries' settings ([methods.ig]) and the option each one feeds
_SETTING_TABLES = {section: f"{kind}_param" for kind, section in SECTIONS.items()}


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
    except UnicodeDecodeError:
        _fail(f"config {path} is not UTF-8 text")
    except tomllib.TOMLDecodeError as exc:
        _fail(f"config {path} is not valid TOML: {exc}")
    names = {p.name for p in ctx.command.params}
    values = {k.replace("-", "_"): v for k, v in table.items()}
    if "trust_checkpoint" in values:  # a config may come from anyone; trust is typed
        _fail(f"config {path}: trust-checkpoint is refused in a config file; type it")
    for section, option in _SETTING_TABLES.items():
        if isinstance(values.get(section), dict) and option in names:
            values.update(_setting_table(path, section, option, values.pop(section), names))
    unknown = sorted(set(values) - names)
    if unknown:
        valid = ", ".join(sorted(n.replace("_", "-") for n in names if n != "config"))
        _fail(f"config {path}: unknown option(s) {', '.join(unknown)}; valid: {valid}")
    ctx.default_map = {**(ctx.default_map or {}), **values}
    return path


def _setting_table(path, section: str, option: str, table: dict, names: set[str]) -> dict:
    """``[methods.ig] steps = 16``: the settings as ``--method-param`` items, kept aside so
    that the command line's items add to them (see :func:`_with_config`); on a command that
    runs several, the tables also say which run (``--methods`` still wins)."""
    for name, settings in table.items():
        if not isinstance(settings, dict):
            _fail(
                f"config {path}: {section}.{name} must be a table of settings, e.g. "
                f"[{section}.{name}] followed by setting = value lines"
            )
    _state["config_params"][option] = table  # TOML values keep their types
    return {section: ",".join(table)} if section in names else {}


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
DeterministicOpt = Annotated[
    bool,
    typer.Option(
        "--deterministic",
        help="Deterministic algorithms only (same floats run to run on one GPU; an operation "
        "without one is an error). The CPU is deterministic already.",
    ),
]


def _settings(option: str, items: list[str] | None) -> dict[str, dict[str, Any]]:
    """Entries' settings: the config file's tables, then the command line's items (which win,
    setting by setting)."""
    from attrib_audit.params import merge, parse_assignments

    flag = "--" + option.replace("_", "-")
    return merge(_state["config_params"].get(option), parse_assignments(items, flag=flag))


def _say(line: str) -> None:
    """One line on stderr, printed as it is (a path holding ``[/]`` is no markup)."""
    err.print(line, markup=False, highlight=False, soft_wrap=True, emoji=False)


def _first_line(exc: BaseException, text: str | None = None) -> str:
    """The first line of ``text`` (default: the error's message), else the error's type."""
    text = (str(exc) if text is None else text).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _fail(message: str, code: int = 2) -> None:
    _say(f"error: {message}")
    raise typer.Exit(code)


# library field names whose flag is not --FIELD-NAME
_FIELD_FLAGS = {
    "epsilons": "--epsilon",
    "formats": "--format",
    "trust": "--trust-checkpoint",
    **{f"{kind}_params": f"--{kind}-param" for kind in SECTIONS},
    "objective_params": "--param",
}


def _as_flags(exc: AttribAuditError) -> str:
    """An error as the command line says it: the options it names become flags
    (``method_params.ig.steps must be >= 1`` -> ``--method-param ig.steps must be >= 1``;
    ``steps`` -> ``--steps``)."""
    from attrib_audit.errors import SettingError

    def flag_of(field: str) -> str:
        return _FIELD_FLAGS.get(field, "--" + field.replace("_", "-"))

    if not isinstance(exc, SettingError):
        return exc.render(flag_of) if exc.refs else str(exc)
    if exc.is_flag:
        return f"{exc.field} {exc.render(flag_of)}"
    head, _, rest = exc.field.partition(".")
    if head == "objective_params":  # --param names the setting only
        rest = rest.partition(".")[2]
    if head == "certify" and rest:  # a certification setting: --certify-param
        head = "certify_param"
    detail = exc.render(flag_of)
    return f"{flag_of(head)} {rest} {detail}" if rest else f"{flag_of(head)} {detail}"


def run(fn: Callable[[], Any]) -> Any:
    """Call the library. Its own errors (bad input) become one line on stderr and exit code 2;
    anything else is a bug: one line and exit code 3 (``--debug`` shows the traceback)."""
    try:
        return fn()
    except typer.Exit:
        raise
    except AttribAuditError as exc:
        if _state["debug"]:
            traceback.print_exc()
        _fail(_first_line(exc, _as_flags(exc)))
    except KeyboardInterrupt:
        _say("interrupted")
        raise typer.Exit(130) from None
    except Exception as exc:
        if _state["debug"]:
            traceback.print_exc()
        if type(exc).__name__ == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError
            _fail(
                "out of GPU memory; lower --max-batch (rows per model call) or --batch-size, "
                "or use --device cpu"
            )
        if isinstance(exc, MemoryError) or "can't allocate memory" in str(exc):  # torch on CPU
            _fail("out of memory; lower --max-batch (rows per model call) or --batch-size")
        _fail(
            f"internal error ({type(exc).__name__}: {_first_line(exc)}); this is a bug in "
            "attrib-audit: rerun with --debug for the traceback and report it",
            code=3,
        )


def _card_overrides(input_shape, value_range, mean, std, classes) -> dict[str, Any]:
    """The card flags, parsed (None where not given)."""
    from attrib_audit.models.card import parse_floats, parse_ints

    return {
        "input_shape": parse_ints(input_shape, "--input-shape") if input_shape else None,
        "value_range": parse_floats(value_range, "--value-range") if value_range else None,
        "mean": parse_floats(mean, "--mean") if mean else None,
        "std": parse_floats(std, "--std") if std else None,
        "classes": tuple(c.strip() for c in classes.split(",")) if classes else None,
    }


def _load(model: Path, arch, card, input_shape, value_range, mean, std, classes, trust):
    from attrib_audit.models import load_model

    return load_model(
        model,
        arch=arch,
        card=card,
        trust=trust,
        **_card_overrides(input_shape, value_range, mean, std, classes),
    )


@app.callback(invoke_without_command=True)
def _main(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    _state["debug"] = debug
    _state["config_params"] = {}  # filled by --config, which the command parses next
    if version:
        from attrib_audit import __version__

        out.print(f"attrib-audit {__version__}")
        raise typer.Exit(0)
    if ctx.invoked_subcommand is None:  # options but no command
        _fail("missing command (see attrib-audit --help)")


@app.command(name="inspect")
def inspect_model_command(
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
        from attrib_audit.device import resolve_device

        dev = resolve_device(device)
        loaded = _load(
            model, arch, card, input_shape, value_range, mean, std, classes, trust_checkpoint
        )
        x = None
        if data is not None:
            from attrib_audit.data import data_for

            src = data_for(loaded.card, data, samples)
            x = next(src.batches(len(src)))[0]
        return inspect_model(loaded, beta=beta, x=x, device=dev)

    info = run(go)
    if as_json:
        sys.stdout.write(json.dumps(info, indent=2) + "\n")
        return
    table = Table(title=escape(str(info["path"])), show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("format", info["format"])
    table.add_row("sha256", info["sha256"])
    from attrib_audit.text import brief

    for key, value in info["card"].items():
        table.add_row(escape(key), escape(brief(value)))
    table.add_row("parameters", f"{info['parameters']:,}")
    table.add_row(
        "activation modules",
        ", ".join(f"{k} x{v}" for k, v in info["activation_modules"].items()) or "none",
    )
    if info["functional_relu_calls"]:
        table.add_row("functional ReLU calls", escape("\n".join(info["functional_relu_calls"])))
    if info["onnx_conversion_max_abs_error"] is not None:
        table.add_row(
            "ONNX conversion",
            f"max |logit diff| vs onnxruntime {info['onnx_conversion_max_abs_error']:.2e}",
        )
    for note in info.get("onnx_notes", []):
        table.add_row("", escape(note))
    s = info["surrogate"]
    table.add_row(
        "surrogate",
        f"softplus beta={s['beta']:g}: {s['replaced']} module(s) replaced, "
        f"{len(s['remaining_relus'])} ReLU(s) left",
    )
    for where in s["remaining_relus"]:
        table.add_row("", f"[yellow]not replaced: {escape(where)}[/]")
    if s["piecewise"]:
        kinds = Counter(entry.split()[0] for entry in s["piecewise"])
        table.add_row(
            "",
            "kept piecewise (zero second derivative, maps may jump): "
            + ", ".join(f"{k} x{n}" for k, n in kinds.items()),
        )
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
    explain: ExplainOpt = "logit",
    reduce: ReduceOpt = "sum-abs",
    method_param: MethodParamOpt = None,
) -> None:
    """Attribution maps of a model for some inputs, as heatmap PNGs and .npy arrays."""
    from attrib_audit.api import attribute_to_dir
    from attrib_audit.data import data_for

    def go():
        from attrib_audit.errors import SettingError
        from attrib_audit.params import build
        from attrib_audit.registry import METHODS

        given = _settings("method_param", method_param)
        for name in sorted(set(given) - {method}):  # another method's: ignored, unless a typo
            if name not in METHODS:
                raise SettingError("--method-param", METHODS.unknown_message(name), is_flag=True)
        params = given.get(method, {})
        build(METHODS.get(method).params, params, owner=f"method_params.{method}")  # check now
        from attrib_audit.device import resolve_device

        dev = resolve_device(device)
        loaded = _load(
            model, arch, card, input_shape, value_range, mean, std, classes, trust_checkpoint
        )
        data = data_for(loaded.card, inputs[0] if len(inputs) == 1 else inputs, samples)
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
    table = Table(title=escape(f"{method} maps written to {out_dir}"), title_justify="left")
    for col in ("#", "label", "prediction", "heatmap"):
        table.add_column(col)
    for r in rows[:20]:
        table.add_row(
            str(r["index"]),
            "-" if r["label"] is None else str(r["label"]),
            escape(r["class"]),
            escape(r["png"]),
        )
    out.print(table)
    if len(rows) > 20:
        out.print(f"... and {len(rows) - 20} more")


def _split(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def _progress_bar():
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )


def _run_with_progress(fn: Callable[[Callable[[int, int, str], None]], Any], kept: str) -> Any:
    """``run(fn(progress))`` with a Rich bar that starts at the first report (so setup errors
    print on a clean line); after Ctrl-C, say what is kept (``kept``) before exiting 130."""
    bar = _progress_bar()
    task = bar.add_task("starting", total=None)

    def progress(done: int, total: int, label: str) -> None:
        bar.start()
        bar.update(task, completed=done, total=total, description=label)

    def go():
        try:
            return fn(progress)
        finally:
            if bar.live.is_started:
                bar.stop()

    try:
        return run(go)
    except typer.Exit as exc:
        if exc.exit_code == 130:
            _say(kept)
        raise


def _print_gate(report: dict) -> int:
    from attrib_audit.report.console import gate_table

    table = gate_table(report)
    if table is not None:
        out.print(table)
        verdict = "[bold green]PASS[/]" if report["gate"]["passed"] else "[bold red]FAIL[/]"
        out.print(f"gate: {verdict}")
    return 0 if report["gate"]["passed"] else 1


@app.command()
def audit(
    model: Annotated[
        Path | None,
        typer.Argument(
            help="Checkpoint to audit (default: the bundled Fashion-MNIST model on the bundled "
            "1,000-image test slice, in a quick configuration).",
            show_default=False,
        ),
    ] = None,
    data: AuditDataOpt = None,
    arch: ArchOpt = None,
    card: CardOpt = None,
    input_shape: ShapeOpt = None,
    value_range: RangeOpt = None,
    mean: MeanOpt = None,
    std: StdOpt = None,
    classes: ClassesOpt = None,
    trust_checkpoint: TrustOpt = False,
    samples: Annotated[
        int | None,
        typer.Option(
            "--samples",
            help="Use the first N samples (default 100; 32 in the quick default audit).",
        ),
    ] = None,
    batch_size: BatchOpt = 64,
    max_batch: MaxBatchOpt = None,
    device: DeviceOpt = "auto",
    deterministic: DeterministicOpt = False,
    seed: SeedOpt = 0,
    config: ConfigOpt = None,
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset", help="A paper's protocol: mnist, fashion-mnist, gtsrb, flower, cifar10-ssr."
        ),
    ] = None,
    methods: MethodsOpt = None,
    attacks: Annotated[
        str | None,
        typer.Option("--attacks", help="Comma-separated attacks (default ifia-topk,random)."),
    ] = None,
    metrics: Annotated[
        str | None, typer.Option("--metrics", help="Comma-separated metrics (default: all).")
    ] = None,
    epsilons: Annotated[
        str | None,
        typer.Option(
            "--epsilon",
            help="Comma-separated radii in the value range, fractions allowed "
            "(default 2/255,4/255,8/255).",
        ),
    ] = None,
    steps: Annotated[
        int | None, typer.Option("--steps", help="Attack iterations (default 20).")
    ] = None,
    step_size: Annotated[
        str | None, typer.Option("--step-size", help="Attack step (default 2.5*epsilon/steps).")
    ] = None,
    k: Annotated[
        int | None,
        typer.Option(
            "--k",
            help="k of the measured top-k intersection, and of the top-k attacks unless "
            "--attack-param sets theirs (default: an eighth of the pixels).",
        ),
    ] = None,
    method_param: MethodParamOpt = None,
    attack_param: AttackParamOpt = None,
    metric_param: MetricParamOpt = None,
    reduce: ReduceOpt = "sum-abs",
    explain: ExplainOpt = "logit",
    beta: BetaOpt = 10.0,
    transfer: Annotated[
        bool,
        typer.Option("--transfer", help="Also evaluate each perturbation on every other method."),
    ] = False,
    adv_accuracy: Annotated[
        bool, typer.Option("--adv-accuracy", help="Also measure PGD adversarial accuracy.")
    ] = False,
    certify: CertifyOpt = False,
    certify_param: CertifyParamOpt = None,
    out_dir: OutOpt = Path("attrib-audit-report"),
    formats: FormatOpt = "json,html,junit",
    require: RequireOpt = None,
    baseline: Annotated[
        Path | None, typer.Option("--baseline", help="Earlier report.json to compare against.")
    ] = None,
    max_drop: Annotated[
        float | None,
        typer.Option(
            "--max-drop", help="Largest allowed regression of any summary metric vs --baseline."
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue an interrupted audit in --out.")
    ] = False,
) -> None:
    """Attack a model's attributions, measure how far they move, write reports, gate CI."""
    from attrib_audit.config import AuditConfig
    from attrib_audit.models.card import parse_floats
    from attrib_audit.pipeline import audit as run_audit

    def go(progress):
        cfg = AuditConfig(
            model=str(model) if model else None,
            arch=arch,
            card=str(card) if card else None,
            **_card_overrides(input_shape, value_range, mean, std, classes),
            trust=trust_checkpoint,
            data=data,
            samples=samples,
            batch_size=batch_size,
            max_batch=max_batch,
            methods=_split(methods),
            attacks=_split(attacks),
            metrics=_split(metrics),
            method_params=_settings("method_param", method_param),
            attack_params=_settings("attack_param", attack_param),
            metric_params=_settings("metric_param", metric_param),
            epsilons=list(parse_floats(epsilons, "--epsilon")) if epsilons else None,
            steps=steps,
            step_size=parse_floats(step_size, "--step-size")[0] if step_size else None,
            k=k,
            reduce=reduce,
            explain=explain,
            beta=beta,
            preset=preset,
            transfer=transfer,
            adv_accuracy=adv_accuracy,
            certify=_certify_settings(certify, certify_param),
            require=list(require or []),
            baseline=str(baseline) if baseline else None,
            max_drop=max_drop,
            seed=seed,
            device=device,
            deterministic=deterministic,
            out=str(out_dir),
            formats=_split(formats) or [],
            resume=resume,
        )
        return run_audit(cfg, progress=progress)

    report = _run_with_progress(
        go, f"the finished part is kept in {out_dir}; rerun with --resume to continue"
    )
    code = _reported(report, out_dir, formats)
    if model is None and preset is None:
        out.print(
            "quick audit done. The Fashion-MNIST protocol of the papers (eps 0.1, IFIA "
            "top-k 100, 100 steps):"
        )
        out.print("  attrib-audit audit --preset fashion-mnist --samples 1000", highlight=False)
    raise typer.Exit(code)


def _reported(report: dict | None, out_dir: Path, formats: str) -> int:
    """Print an audit's summary, the files it wrote and its gate; the exit code."""
    from attrib_audit.report import FILENAMES
    from attrib_audit.report.console import summary_table

    if report is None:  # a torchrun rank other than 0: rank 0 reports
        raise typer.Exit(0)
    out.print(summary_table(report))
    for fmt in _split(formats) or []:
        out.print(f"wrote {out_dir / FILENAMES[fmt]}", markup=False, highlight=False)
    flat: dict[str, tuple[int, int]] = {}
    for r in report["results"]:
        if r.get("flat_maps") and r["transfer_from"] is None:
            flat[r["method"]] = max(flat.get(r["method"], (0, 0)), (r["flat_maps"], r["n"]))
    for method, (k, n) in sorted(flat.items()):
        _say(f"note: {method}: {k} of {n} clean maps are flat (one value), left out of its metrics")
    if not report["evidence"]["conclusive"]:
        _say(f"warning: the evidence is inconclusive: {'; '.join(report['evidence']['problems'])}")
    return _print_gate(report)


@app.command()
def certify(
    model: ModelArg,
    data: AuditDataOpt = None,
    arch: ArchOpt = None,
    card: CardOpt = None,
    input_shape: ShapeOpt = None,
    value_range: RangeOpt = None,
    mean: MeanOpt = None,
    std: StdOpt = None,
    classes: ClassesOpt = None,
    trust_checkpoint: TrustOpt = False,
    samples: Annotated[
        int | None, typer.Option("--samples", help="Use the first N samples (default 100).")
    ] = None,
    batch_size: BatchOpt = 64,
    max_batch: MaxBatchOpt = None,
    device: DeviceOpt = "auto",
    seed: SeedOpt = 0,
    config: ConfigOpt = None,
    preset: Annotated[
        str | None, typer.Option("--preset", help="A paper's protocol (its methods and k).")
    ] = None,
    methods: MethodsOpt = None,
    k: Annotated[
        int | None,
        typer.Option("--k", help="k of the certified top-k (default: an eighth of the pixels)."),
    ] = None,
    method_param: MethodParamOpt = None,
    certify_param: CertifyParamOpt = None,
    reduce: ReduceOpt = "sum-abs",
    explain: ExplainOpt = "logit",
    out_dir: OutOpt = Path("attrib-audit-report"),
    formats: FormatOpt = "json,html,junit",
    require: RequireOpt = None,
) -> None:
    """Certify the top-k pixels of a model's attributions by randomized smoothing (Anani et al.
    2025): the certified fraction per L2 radius, reports and gate (certified_topk)."""
    from attrib_audit.config import AuditConfig
    from attrib_audit.pipeline import audit as run_audit

    def go(progress):
        cfg = AuditConfig(
            model=str(model),
            arch=arch,
            card=str(card) if card else None,
            **_card_overrides(input_shape, value_range, mean, std, classes),
            trust=trust_checkpoint,
            data=data,
            samples=samples,
            batch_size=batch_size,
            max_batch=max_batch,
            methods=_split(methods),
            attacks=[],
            method_params=_settings("method_param", method_param),
            k=k,
            reduce=reduce,
            explain=explain,
            preset=preset,
            certify=_certify_settings(True, certify_param),
            require=list(require or []),
            seed=seed,
            device=device,
            out=str(out_dir),
            formats=_split(formats) or [],
        )
        return run_audit(cfg, progress=progress)

    report = _run_with_progress(go, f"nothing is kept in {out_dir}")
    raise typer.Exit(_reported(report, out_dir, formats))


@app.command()
def gate(
    report_path: Annotated[
        Path, typer.Argument(help="report.json of an audit.", show_default=False)
    ],
    require: Annotated[
        list[str] | None, typer.Option("--require", help="Gate expression (repeatable).")
    ] = None,
    baseline: Annotated[
        Path | None, typer.Option("--baseline", help="Earlier report.json.")
    ] = None,
    max_drop: Annotated[
        float | None, typer.Option("--max-drop", help="Largest allowed regression vs --baseline.")
    ] = None,
    junit: Annotated[
        Path | None, typer.Option("--junit", help="Also write the checks as JUnit XML here.")
    ] = None,
) -> None:
    """Check an existing report against thresholds and a baseline; exit 1 when a check fails."""
    from attrib_audit.io import atomic_write_text
    from attrib_audit.report import evaluate_gate, junit_xml, load_report

    def go():
        report = load_report(report_path)
        report["gate"] = evaluate_gate(
            report, list(require or []), baseline=baseline, max_drop=max_drop
        )
        if not report["gate"]["checks"]:
            raise AttribAuditError("nothing to check: pass --require EXPR or --baseline OLD.json")
        if junit is not None:
            atomic_write_text(junit, junit_xml(report))
        return report

    raise typer.Exit(_print_gate(run(go)))


@app.command()
def compare(
    a: Annotated[Path, typer.Argument(help="First report.json (before).", show_default=False)],
    b: Annotated[Path, typer.Argument(help="Second report.json (after).", show_default=False)],
) -> None:
    """Two reports' summaries side by side (before/after)."""
    from attrib_audit.report import load_report
    from attrib_audit.report.console import compare_table

    ra, rb = run(lambda: (load_report(a), load_report(b)))
    out.print(
        compare_table(
            ra,
            rb,
            escape(a.name if a.name != b.name else str(a)),
            escape(b.name if a.name != b.name else str(b)),
        )
    )


@app.command()
def finetune(
    model: ModelArg,
    objective: Annotated[
        str,
        typer.Option(
            "--objective", help="natural, madry, ig-norm, ig-sum-norm, ssr, cacr-wacr, input-grad."
        ),
    ] = "ig-norm",
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            help="An objective parameter as name=value, e.g. lam=1.0, epsilon=0.1 (repeatable).",
        ),
    ] = None,
    data: Annotated[
        str | None,
        typer.Option("--data", help="Training data (default digits:train for the bundled model)."),
    ] = None,
    arch: ArchOpt = None,
    card: CardOpt = None,
    input_shape: ShapeOpt = None,
    value_range: RangeOpt = None,
    mean: MeanOpt = None,
    std: StdOpt = None,
    classes: ClassesOpt = None,
    trust_checkpoint: TrustOpt = False,
    samples: SamplesOpt = None,
    steps: Annotated[
        int | None, typer.Option("--steps", help="Optimiser steps (default: one epoch).")
    ] = None,
    epochs: Annotated[
        int | None, typer.Option("--epochs", help="Epochs, when --steps is not given.")
    ] = None,
    batch_size: BatchOpt = 32,
    optimizer: Annotated[str, typer.Option("--optimizer", help="adam or sgd.")] = "adam",
    lr: Annotated[float, typer.Option("--lr", help="Learning rate.")] = 1e-3,
    momentum: Annotated[float, typer.Option("--momentum", help="SGD momentum.")] = 0.9,
    weight_decay: Annotated[float, typer.Option("--weight-decay", help="Weight decay.")] = 0.0,
    schedule: Annotated[
        str, typer.Option("--schedule", help="constant, cosine or step.")
    ] = "constant",
    device: DeviceOpt = "auto",
    deterministic: DeterministicOpt = False,
    seed: SeedOpt = 0,
    config: ConfigOpt = None,
    out_dir: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Folder for the new checkpoint, its card, the training state and the "
            "before/after reports.",
        ),
    ] = Path("finetuned"),
    checkpoint_every: Annotated[
        int,
        typer.Option(
            "--checkpoint-every", help="Write the resumable training state every N steps."
        ),
    ] = 100,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue an interrupted run in --out.")
    ] = False,
    train_surrogate: Annotated[
        bool,
        typer.Option(
            "--train-surrogate",
            help="Train the softplus surrogate (smooth second derivatives), then copy its "
            "weights back.",
        ),
    ] = False,
    beta: BetaOpt = 10.0,
    no_audit: Annotated[
        bool, typer.Option("--no-audit", help="Skip the before/after audit.")
    ] = False,
    audit_data: Annotated[
        str | None,
        typer.Option(
            "--audit-data",
            help="Data for the before/after audit (default: the test split of --data).",
        ),
    ] = None,
    audit_samples: Annotated[
        int, typer.Option("--audit-samples", help="Samples in the before/after audit.")
    ] = 100,
    preset: Annotated[
        str | None, typer.Option("--preset", help="Audit preset for the before/after audit.")
    ] = None,
) -> None:
    """Fine-tune a model with a robust-attribution objective; audit it before and after."""
    from attrib_audit.report.console import compare_table
    from attrib_audit.training import FinetuneConfig, parse_params
    from attrib_audit.training import finetune as run_finetune

    def go(progress):
        cfg = FinetuneConfig(
            model=str(model),
            objective=objective,
            params=parse_params(param),
            data=data,
            arch=arch,
            card=str(card) if card else None,
            **_card_overrides(input_shape, value_range, mean, std, classes),
            trust=trust_checkpoint,
            samples=samples,
            steps=steps,
            epochs=epochs,
            batch_size=batch_size,
            optimizer=optimizer,
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            schedule=schedule,
            device=device,
            deterministic=deterministic,
            seed=seed,
            out=str(out_dir),
            checkpoint_every=checkpoint_every,
            resume=resume,
            train_surrogate=train_surrogate,
            beta=beta,
            audit=not no_audit,
            audit_data=audit_data,
            audit_samples=audit_samples,
            audit_preset=preset,
        )

        def report(done: int, total: int, terms: dict) -> None:
            shown = " ".join(f"{k}={v:.4g}" for k, v in terms.items())
            progress(done, total, f"{objective} {shown}")

        return run_finetune(cfg, progress=report)

    result = _run_with_progress(go, f"the training state is kept in {out_dir}; rerun with --resume")
    out.print(
        f"wrote {result.checkpoint} and {result.card} after {result.steps} steps "
        f"({' '.join(f'{k}={v:.4g}' for k, v in result.last_terms.items())})",
        markup=False,
    )
    if result.before is not None:
        out.print(compare_table(result.before, result.after, "before", "after"))
        out.print(
            f"wrote {result.comparison}, {out_dir / 'before'}/ and {out_dir / 'after'}/",
            markup=False,
        )


@app.command()
def plugins(
    settings: Annotated[
        bool,
        typer.Option(
            "--settings", help="Also list each entry's facts and settings, with defaults."
        ),
    ] = False,
) -> None:
    """Every registered method, attack, metric, objective and loader, with its source."""
    from attrib_audit.registry import REGISTRIES

    table = Table(title="registered entries", title_justify="left")
    for col in ("kind", "name", "source", "version", "create_graph"):
        table.add_column(col, no_wrap=col in ("name", "source"))
    failures, listed = [], []
    for kind, registry in REGISTRIES.items():
        entries = run(lambda r=registry: list(r))
        for e in entries:
            cg = ("yes" if e.facts.create_graph else "no") if kind == "method" else ""
            table.add_row(kind, escape(e.name), escape(e.source), escape(str(e.version)), cg)
            listed.append((kind, e))
        failures.extend((kind, f) for f in registry.failures)
    out.print(table)
    if settings:
        for kind, e in listed:
            _print_settings(kind, e)
    else:
        out.print("each entry's settings: attrib-audit plugins --settings", highlight=False)
    for kind, f in failures:
        _say(f"warning: {kind} plugin {f.name!r} from {f.source} failed to load: {f.error}")


def _print_settings(kind: str, e) -> None:
    """One entry's facts, then one line per setting: name = default (type) help."""
    import dataclasses

    from attrib_audit.params import describe

    facts = dataclasses.asdict(e.facts) if e.facts is not None else {}
    shown = ", ".join(f"{k}={v}" for k, v in facts.items() if v not in ("", ()))
    out.print(f"\n{kind} {e.name}" + (f" ({shown})" if shown else ""), markup=False)
    rows = describe(e.params)
    flag = f"--{kind}-param {e.name}." if kind in SECTIONS else "--param "
    for name, typ, default, about in rows:
        out.print(f"  {flag}{name}={default!r}  ({typ})  {about}", markup=False, highlight=False)
    if not rows:
        out.print("  no settings", markup=False)


def main() -> None:
    app()
