"""The audit: the grid method x attack x epsilon over the correctly classified samples."""

from __future__ import annotations

import base64
import copy
import dataclasses
import hashlib
import inspect
import io
import json
import math
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from attrib_audit.errors import AttribAuditError
from attrib_audit.models.card import LoadOptions
from attrib_audit.presets import PRESETS, scaled_k

# options a preset may set; None in AuditConfig means "preset, else this default"
DEFAULTS: dict[str, Any] = {
    "samples": 100,
    "methods": ["sm", "ig"],
    "attacks": ["ifia-topk", "random"],
    "epsilons": [2 / 255, 4 / 255, 8 / 255],
    "steps": 20,
    "step_size": None,  # 2.5 * epsilon / steps (Madry et al.'s rule)
    "restarts": 0,
    "k": None,  # an eighth of the pixels
    "attack_k": None,  # = k
    "ig_steps": 16,
    "pgd_steps": 20,
    "pgd_step_size": None,
}
# `attrib-audit audit` with no model: the bundled Fashion-MNIST model on the bundled slice,
# small enough for about a minute on 2 CPU cores (flags still win)
QUICK: dict[str, Any] = {"samples": 32, "epsilons": [4 / 255, 8 / 255]}
FORMATS = ("json", "html", "junit")
JOURNAL = ".audit-journal.jsonl"


@dataclass
class AuditConfig(LoadOptions):
    """Every audit option. ``None`` means: the preset's value, else the default."""

    model: str | None = None  # None: the bundled sample model
    data: str | None = None  # None: the bundled data of the bundled model
    samples: int | None = None  # None: 100 (32 in the quick default audit)
    batch_size: int = 64
    max_batch: int | None = None
    methods: list[str] | None = None
    attacks: list[str] | None = None
    metrics: list[str] | None = None  # None: every registered metric
    epsilons: list[float] | None = None
    steps: int | None = None
    step_size: float | None = None
    restarts: int | None = None
    k: int | None = None
    attack_k: int | None = None
    ig_steps: int | None = None
    ig_method: str | None = None
    sg_samples: int | None = None
    sg_sigma: float | None = None
    ug_samples: int | None = None
    ug_radius: float | None = None
    reduce: str = "sum-abs"
    explain: str = "logit"
    beta: float = 10.0
    preset: str | None = None
    transfer: bool = False
    adv_accuracy: bool = False
    pgd_steps: int | None = None
    pgd_step_size: float | None = None
    require: list[str] = field(default_factory=list)
    baseline: str | None = None
    max_drop: float | None = None
    seed: int = 0
    device: str = "auto"
    out: str | None = "attrib-audit-report"
    formats: list[str] = field(default_factory=lambda: list(FORMATS))
    resume: bool = False
    gallery: int = 6

    def resolved(self, pixels: int) -> AuditConfig:
        """A copy with the preset and the defaults filled in, k scaled to ``pixels``."""
        preset: dict[str, Any] = {}
        if self.preset is not None:
            if self.preset not in PRESETS:
                raise AttribAuditError(
                    f"unknown preset {self.preset!r}; valid presets: {', '.join(PRESETS)}"
                )
            preset = PRESETS[self.preset]
        values = {}
        for name, default in DEFAULTS.items():
            given = getattr(self, name)
            if given is not None:
                values[name] = given
            elif name in preset:
                values[name] = preset[name]
            else:
                values[name] = default
        ref = preset.get("pixels")
        for name in ("k", "attack_k"):
            if getattr(self, name) is None and name in preset:  # the paper's k, scaled
                values[name] = scaled_k(preset[name], pixels, ref)
        if values["k"] is None:
            values["k"] = max(1, round(pixels / 8))
        if values["attack_k"] is None:
            values["attack_k"] = values["k"]
        return dataclasses.replace(self, **values)

    def settings(self) -> dict[str, Any]:
        """What a resumed audit must share with the interrupted one (JSON values)."""
        d = {
            k: v
            for k, v in dataclasses.asdict(self).items()
            if k not in ("resume", "out", "formats", "require", "baseline", "max_drop")
        }
        return json.loads(json.dumps(d, sort_keys=True, default=str))

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.settings(), sort_keys=True).encode()).hexdigest()


def _accepted(fn: Callable, kwargs: dict[str, Any]) -> dict[str, Any]:
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return kwargs
    return {k: v for k, v in kwargs.items() if k in params}


def _cell_seed(seed: int, *parts: Any) -> int:
    return zlib.crc32(":".join(map(str, (seed, *parts))).encode()) & 0x7FFFFFFF


def _finite(v: float) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def _encode(t: Tensor) -> str:
    buf = io.BytesIO()
    np.save(buf, t.detach().cpu().numpy().astype(np.float16))
    return base64.b64encode(buf.getvalue()).decode()


def decode_array(s: str) -> np.ndarray:
    return np.load(io.BytesIO(base64.b64decode(s))).astype(np.float32)


class Journal:
    """Per-cell results, appended as each cell finishes, so an interrupted audit resumes.

    The first line records what the results are of: the checkpoint's sha256, the data's
    fingerprint and the settings. A resume whose model, data or settings differ is refused,
    naming what changed.
    """

    def __init__(self, path: Path | None, header: dict[str, Any], resume: bool) -> None:
        self.path, self.done, self.created = path, {}, False
        if path is None:
            return
        if resume and path.is_file():
            lines = path.read_text(errors="replace").splitlines()
            try:
                old = json.loads(lines[0]) if lines else {}
            except json.JSONDecodeError:
                old = {}
            _check_same_run(path, old if isinstance(old, dict) else {}, header)
            for line in lines[1:]:
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:  # the line an interruption cut short
                    continue
                if isinstance(entry, dict) and isinstance(entry.get("cell"), str):
                    self.done[entry["cell"]] = entry
        else:
            path.write_text(json.dumps(header) + "\n")
            self.created = True

    def get(self, cell: str) -> dict | None:
        return self.done.get(cell)

    def add(self, cell: str, entry: dict) -> None:
        entry = {"cell": cell, **entry}
        self.done[cell] = entry
        if self.path is not None:
            with open(self.path, "a") as f:
                f.write(json.dumps(entry) + "\n")
                f.flush()

    def remove(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def _check_same_run(path: Path, old: dict[str, Any], new: dict[str, Any]) -> None:
    start_over = "rerun without --resume to start over"
    if set(old) != set(new):
        raise AttribAuditError(
            f"cannot resume: {path} was not written by this version of the audit; {start_over}"
        )
    if old["model_sha256"] != new["model_sha256"]:
        raise AttribAuditError(
            f"cannot resume: the checkpoint changed since the interrupted audit (sha256 "
            f"{str(old['model_sha256'])[:12]}... then, {new['model_sha256'][:12]}... now); "
            f"{start_over}"
        )
    if old["data"] != new["data"]:
        raise AttribAuditError(
            f"cannot resume: the data changed since the interrupted audit; {start_over}"
        )
    a, b = old["settings"], new["settings"]
    if a != b:
        a = a if isinstance(a, dict) else {}  # a damaged header: every setting differs
        keys = sorted(a.keys() | b.keys())
        changed = [f"{k} {a.get(k)!r} -> {b.get(k)!r}" for k in keys if a.get(k) != b.get(k)]
        raise AttribAuditError(
            f"cannot resume: the settings changed ({'; '.join(changed[:4])}); {start_over}"
        )


def _method_fn(name: str, cfg: AuditConfig, value_range, seed: int):
    """The registered method with the audit's settings bound: ``fn(model, x, target,
    create_graph=...)``. Stochastic methods get a fixed seed per cell, so clean and perturbed
    maps see the same noise."""
    from attrib_audit.api import method_kwargs

    fn, kwargs = method_kwargs(
        name,
        value_range,
        **{
            "ig": {"steps": cfg.ig_steps, "method": cfg.ig_method},
            "sg": {"samples": cfg.sg_samples, "sigma": cfg.sg_sigma},
            "ug": {"samples": cfg.ug_samples, "radius": cfg.ug_radius},
        }.get(name, {}),
    )
    extra = _accepted(fn, {"seed": seed, "explain": cfg.explain, "max_batch": cfg.max_batch})
    return partial(fn, **{**kwargs, **extra})


def audit(
    config: AuditConfig, *, progress: Callable[[int, int, str], None] | None = None
) -> dict[str, Any]:
    """Run the audit described by ``config``; write its reports to ``config.out`` (when set)
    and return the JSON report (``README.md``, "The report").

    Every check of the input runs before the first attack; a bad input raises
    :class:`AttribAuditError` and leaves no file behind.
    """
    from attrib_audit.device import resolve_device
    from attrib_audit.io import OutputDir
    from attrib_audit.report import build_report, render_reports, write_rendered

    device = resolve_device(config.device)
    state = _prepare(config, device)
    cfg = state["cfg"]
    if not cfg.out:
        rows, gallery, extras = _run_grid(state, Journal(None, {}, False), device, progress)
        return build_report(state, rows, extras)
    header = {  # only a journal needs it: the data fingerprint reads every sample once more
        "model_sha256": state["loaded"].sha256,
        "data": state["data"].fingerprint(),
        "settings": cfg.settings(),
    }
    out = Path(cfg.out)
    with OutputDir(out) as held:
        journal = Journal(out / JOURNAL, header, cfg.resume)
        if journal.created:
            held.discard_on_error(journal.path)
        rows, gallery, extras = _run_grid(state, journal, device, progress)
        report = build_report(state, rows, extras)
        write_rendered(out, render_reports(report, cfg.formats, gallery=gallery))
        journal.remove()
    return report


def _prepare(config: AuditConfig, device) -> dict[str, Any]:
    """Load and check everything the audit needs; no attack runs and no file is written."""
    from attrib_audit.data import load_data
    from attrib_audit.models import load_model, sample_model, smooth_surrogate
    from attrib_audit.models.bundled import bundled_data
    from attrib_audit.registry import ATTACKS, METHODS, METRICS
    from attrib_audit.report.gate import load_report, validate_require

    for fmt in config.formats:
        if fmt not in FORMATS:
            raise AttribAuditError(f"unknown report format {fmt!r}; valid: {', '.join(FORMATS)}")
    if config.model is None and config.preset is None:  # the quick default audit
        config = dataclasses.replace(
            config, **{k: v for k, v in QUICK.items() if getattr(config, k) is None}
        )
    if config.max_drop is not None and config.baseline is None:
        raise AttribAuditError("--max-drop needs --baseline OLD.json")
    drop = config.max_drop
    if drop is not None and not (math.isfinite(drop) and drop >= 0):
        raise AttribAuditError(f"--max-drop must be a finite number >= 0, got {config.max_drop}")
    baseline = load_report(config.baseline, what="baseline report") if config.baseline else None
    path = config.model or str(sample_model())
    loaded = load_model(path, **config.load_options())
    card = loaded.card
    if loaded.num_classes < 2:
        raise AttribAuditError(
            f"the model has {loaded.num_classes} output; an audit needs a classifier with two or "
            "more classes (with one, every prediction is kept and every map trivially so)"
        )
    bundled = bundled_data(path)
    data_source = config.data or (bundled[1] if bundled else None)
    if data_source is None:
        raise AttribAuditError("pass --data (a folder, an .npz/.pt file or a built-in data set)")
    c, h, w = card.input_shape
    cfg = config.resolved(h * w)
    cfg = dataclasses.replace(cfg, data=data_source, model=path)
    for name in cfg.methods:
        METHODS.get(name)
    for name in cfg.attacks:
        if not ATTACKS.get(name).meta.get("keeps_prediction", True):
            raise AttribAuditError(
                f"{name!r} changes predictions and is not an attribution attack; "
                "use --adv-accuracy for adversarial accuracy"
            )
    metrics = cfg.metrics or METRICS.names()
    for name in metrics:
        METRICS.get(name)
    validate_require(cfg.require, cfg.methods, metrics)
    if (
        cfg.require
        and any("adversarial_accuracy" in r for r in cfg.require)
        and not cfg.adv_accuracy
    ):
        raise AttribAuditError("a --require on adversarial_accuracy needs --adv-accuracy")
    _check_settings(cfg, h * w)
    data = load_data(
        data_source,
        input_shape=card.input_shape,
        value_range=card.value_range,
        classes=card.classes,
        samples=cfg.samples,
    )
    data.check_labels(loaded.num_classes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unreplaced ReLUs are reported in the report
        module = _on(loaded.module, device)
        surrogate = smooth_surrogate(module, cfg.beta)
    return {
        "cfg": dataclasses.replace(cfg, metrics=metrics),
        "loaded": dataclasses.replace(loaded, module=module),
        "surrogate": surrogate,
        "data": data,
        "baseline": baseline,
    }


def _on(module: torch.nn.Module, device) -> torch.nn.Module:
    """``module`` on ``device``: itself when it is there already, else a copy (the caller's
    module is not moved)."""
    where = next(iter(module.parameters()), None)
    where = where if where is not None else next(iter(module.buffers()), None)
    if where is None or where.device == torch.device(device):
        return module
    return copy.deepcopy(module).to(device)


def _check_settings(cfg: AuditConfig, pixels: int) -> None:
    """Settings that would make the audit trivial or meaningless are refused (the numbers it
    would give prove nothing, so no gate may pass on them)."""
    from attrib_audit.registry import ATTACKS

    if not cfg.epsilons or any(not math.isfinite(e) or e < 0 for e in cfg.epsilons):
        raise AttribAuditError("--epsilon needs one or more finite radii >= 0")
    if max(cfg.epsilons) <= 0:
        raise AttribAuditError(
            "--epsilon: every radius is 0, so nothing would be attacked; give a radius > 0"
        )
    iterative = [a for a in cfg.attacks if ATTACKS.get(a).meta.get("iterative", True)]
    if iterative and cfg.steps < 1:
        raise AttribAuditError(
            f"--steps must be >= 1 for {', '.join(iterative)} (0 steps returns the input)"
        )
    if cfg.adv_accuracy and cfg.pgd_steps < 1:
        raise AttribAuditError("pgd_steps must be >= 1 for --adv-accuracy")
    for name, value in (("--step-size", cfg.step_size), ("pgd_step_size", cfg.pgd_step_size)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise AttribAuditError(f"{name} must be a finite number > 0, got {value}")
    if cfg.restarts < 0:
        raise AttribAuditError(f"--restarts must be >= 0, got {cfg.restarts}")
    for name, k in (("--k", cfg.k), ("--attack-k", cfg.attack_k)):
        if not 1 <= k < pixels:
            raise AttribAuditError(
                f"{name} {k} must be between 1 and {pixels - 1}: the maps have {pixels} pixels, "
                "and the top-k of all pixels is always kept"
            )
    if cfg.batch_size < 1:
        raise AttribAuditError("--batch-size must be >= 1")
    if cfg.max_batch is not None and cfg.max_batch < 0:
        raise AttribAuditError(f"--max-batch must be >= 0, got {cfg.max_batch}")
    if not (math.isfinite(cfg.beta) and cfg.beta > 0):
        raise AttribAuditError(f"--beta must be a finite number > 0, got {cfg.beta}")
    if cfg.gallery < 0:
        raise AttribAuditError(f"gallery must be >= 0, got {cfg.gallery}")
    for name in ("ig_steps", "sg_samples", "ug_samples"):
        value = getattr(cfg, name)
        if value is not None and value < 1:
            raise AttribAuditError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    for name in ("sg_sigma", "ug_radius"):
        value = getattr(cfg, name)
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise AttribAuditError(f"--{name.replace('_', '-')} must be finite and >= 0")


@dataclass
class _Batch:
    """The correctly classified samples of one data batch, with their clean maps cached."""

    b: int
    x: Tensor
    y: Tensor
    pred: Tensor
    idx: Tensor
    clean: dict = field(default_factory=dict)


def _metric_values(
    cfg: AuditConfig, raw0: Tensor, red0: Tensor, raw1: Tensor, red1: Tensor
) -> dict[str, np.ndarray]:
    """Every configured metric between clean and perturbed maps, per sample."""
    from attrib_audit.registry import METRICS

    values = {}
    finite = (torch.isfinite(raw0).flatten(1).all(1) & torch.isfinite(raw1).flatten(1).all(1)).cpu()
    for name in cfg.metrics:
        entry = METRICS.get(name)
        on_raw = entry.meta.get("on") == "raw"
        params = _accepted(entry.obj, {**entry.defaults, "k": cfg.k})
        v = entry.obj(raw0 if on_raw else red0, raw1 if on_raw else red1, **params)
        v = v.detach().double().cpu()
        values[name] = torch.where(finite, v, torch.nan).numpy()  # a NaN map measures nothing
    return values


def _maps(state, batch: _Batch, name: str, seed: int, x_adv: Tensor):
    """(clean raw, clean reduced, perturbed raw, perturbed reduced) maps of the audited model."""
    from attrib_audit.metrics import reduce_map

    cfg, model, vr = state["cfg"], state["loaded"].module, state["loaded"].card.value_range
    fn = _method_fn(name, cfg, vr, seed)
    if (name, seed) not in batch.clean:
        raw = fn(model, batch.x, batch.pred).detach()
        batch.clean[(name, seed)] = (raw, reduce_map(raw, cfg.reduce))
    raw0, red0 = batch.clean[(name, seed)]
    raw1 = fn(model, x_adv, batch.pred).detach()
    return raw0, red0, raw1, reduce_map(raw1, cfg.reduce)


def _attack_cell(state, batch: _Batch, m: str, atk: str, e: float, device) -> dict[str, Any]:
    """One cell of the grid: attack method ``m`` with ``atk`` at radius ``e``; per-sample rows
    for ``m`` (and, with transfer, for every other method); gallery candidates at the largest
    epsilon."""
    from attrib_audit.registry import ATTACKS

    cfg, loaded, surrogate = state["cfg"], state["loaded"], state["surrogate"]
    model, vr = loaded.module, loaded.card.value_range
    entry = ATTACKS.get(atk)
    seed = _cell_seed(cfg.seed, batch.b, m, atk, e)
    kwargs = _accepted(
        entry.obj,
        {
            **entry.defaults,
            "steps": cfg.steps,
            "step_size": cfg.step_size or 2.5 * e / max(1, cfg.steps),
            "restarts": cfg.restarts,
            "attack_k": cfg.attack_k,
            "reduce": cfg.reduce,
            "value_range": vr,
            "seed": seed,
        },
    )
    method = _method_fn(m, cfg, vr, seed)
    x_adv = entry.obj(model, surrogate, batch.x, batch.pred, method, epsilon=e, **kwargs).detach()
    audited = loaded.predict(x_adv).argmax(1).to(device)
    kept = audited == batch.pred
    disagreements = 0
    if loaded.onnx_session is not None:  # the converted module vs the graph itself
        with torch.no_grad():
            disagreements = int((model(x_adv).argmax(1) != audited).sum())
    rows, gallery = [], []
    targets = [m] + ([o for o in cfg.methods if o != m] if cfg.transfer else [])
    for t in targets:
        t_seed = seed if t == m else _cell_seed(cfg.seed, batch.b, t, atk, e)
        raw0, red0, raw1, red1 = _maps(state, batch, t, t_seed, x_adv)
        values = _metric_values(cfg, raw0, red0, raw1, red1)

        def facts(i: int, values=values) -> dict[str, Any]:
            return {
                "index": int(batch.idx[i]),
                "label": int(batch.y[i]),
                "prediction": int(batch.pred[i]),
                "attack": atk,
                "epsilon": e,
                **{k: _finite(float(v[i])) for k, v in values.items()},
            }

        rows += [
            {
                **facts(i),
                "method": t,
                "transfer_from": None if t == m else m,
                "prediction_kept": bool(kept[i]),
            }
            for i in range(batch.x.shape[0])
        ]
        if t == m and e == max(cfg.epsilons):
            gallery = [
                {
                    **facts(i),
                    "x": _encode(batch.x[i]),
                    "x_adv": _encode(x_adv[i]),
                    "map": _encode(red0[i]),
                    "map_adv": _encode(red1[i]),
                }
                for i in _worst(values, cfg.gallery)
            ]
    return {"rows": rows, "onnx_disagreements": disagreements, "gallery": gallery}


def _adv_correct(state, x: Tensor, y: Tensor, b: int, e: float, device) -> int:
    """How many samples PGD at radius ``e`` leaves correctly classified."""
    from attrib_audit.registry import ATTACKS

    cfg, loaded = state["cfg"], state["loaded"]
    x_adv = ATTACKS.get("pgd").obj(
        loaded.module,
        None,
        x,
        y,
        None,
        epsilon=e,
        steps=cfg.pgd_steps,
        step_size=cfg.pgd_step_size or 2.5 * e / max(1, cfg.pgd_steps),
        value_range=loaded.card.value_range,
        seed=_cell_seed(cfg.seed, b, "pgd", e),
    )
    return int((loaded.predict(x_adv).argmax(1).to(device) == y).sum())


def _run_grid(state, journal: Journal, device, progress):
    from attrib_audit.models.surrogate import surrogate_agreement

    cfg: AuditConfig = state["cfg"]
    loaded, surrogate, data = state["loaded"], state["surrogate"], state["data"]
    n_batches = math.ceil(len(data) / cfg.batch_size)
    per_batch = len(cfg.methods) * len(cfg.attacks) * len(cfg.epsilons)
    total = n_batches * (per_batch + (len(cfg.epsilons) if cfg.adv_accuracy else 0))
    done = 0

    def tick(label: str) -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, total, label)

    rows: list[dict] = []
    gallery: dict[str, list[dict]] = {m: [] for m in cfg.methods}
    n_total = n_correct = onnx_checked = onnx_disagree = n_nonfinite = 0
    agree_n = agree_pred = agree_cos = 0.0
    adv_correct = dict.fromkeys(cfg.epsilons, 0)
    for b, (x_all, y_all) in enumerate(data.batches(cfg.batch_size)):
        x_all = x_all.to(device)
        logits = loaded.predict(x_all).to(device)
        finite = torch.isfinite(logits).all(1)  # no evidence from a sample without logits
        n_nonfinite += int((~finite).sum())
        pred_all = logits.argmax(1)
        y_all = torch.where(y_all.to(device) < 0, pred_all, y_all.to(device))  # unlabelled
        correct = (pred_all == y_all) & finite
        idx_all = torch.arange(n_total, n_total + x_all.shape[0], device=device)
        n_total += x_all.shape[0]
        n_correct += int(correct.sum())
        for e in cfg.epsilons if cfg.adv_accuracy else ():
            cell = f"{b}|pgd|{e!r}"
            if journal.get(cell) is None:
                journal.add(cell, {"adv_correct": _adv_correct(state, x_all, y_all, b, e, device)})
            adv_correct[e] += journal.get(cell)["adv_correct"]
            tick(f"PGD eps={e:.4g}")
        batch = _Batch(b, x_all[correct], y_all[correct], pred_all[correct], idx_all[correct])
        if batch.x.shape[0] == 0:
            for _ in range(per_batch):
                tick("no correct samples in this batch")
            continue
        a = surrogate_agreement(loaded.module, surrogate, batch.x, max_batch=cfg.max_batch)
        agree_n += a.n
        agree_pred += a.prediction_agreement * a.n
        agree_cos += a.map_cosine * a.n
        for m in cfg.methods:
            for atk in cfg.attacks:
                for e in cfg.epsilons:
                    cell = f"{b}|{m}|{atk}|{e!r}"
                    if journal.get(cell) is None:
                        journal.add(cell, _attack_cell(state, batch, m, atk, e, device))
                    entry = journal.get(cell)
                    rows.extend(entry["rows"])
                    gallery[m].extend(entry["gallery"])
                    onnx_disagree += entry["onnx_disagreements"]
                    if loaded.onnx_session is not None:
                        onnx_checked += batch.x.shape[0]
                    tick(f"{m} x {atk} eps={e:.4g}")
    for m, items in gallery.items():
        gallery[m] = sorted(items, key=_gallery_key)[: cfg.gallery]
    extras = {
        "n_samples": n_total,
        "n_correct": n_correct,
        "n_nonfinite_logits": n_nonfinite,
        "agreement": (agree_pred / agree_n, agree_cos / agree_n) if agree_n else (None, None),
        "onnx": (onnx_checked, onnx_disagree),
        "adv_accuracy": {e: adv_correct[e] / n_total for e in cfg.epsilons}
        if cfg.adv_accuracy and n_total
        else None,
    }
    return rows, gallery, extras


def _worst(values: dict[str, np.ndarray], n: int) -> list[int]:
    """Indices of the n samples whose maps moved most (lowest top-k intersection first)."""
    key = values.get("topk_intersection")
    if key is None:
        key = -values.get("cosine_distance", next(iter(values.values())))
    key = np.nan_to_num(key, nan=np.inf)
    return [int(i) for i in np.argsort(key, kind="stable")[:n]]


def _gallery_key(item: dict) -> tuple:
    v = item.get("topk_intersection")
    c = item.get("cosine_distance")
    return (v if v is not None else math.inf, -(c or 0.0), item["index"])
