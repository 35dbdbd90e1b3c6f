"""The audit: the grid method x attack x epsilon over the correctly classified samples."""

from __future__ import annotations

import base64
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

    def fingerprint(self) -> str:
        """What a resumed audit must share with the interrupted one."""
        d = {
            k: v
            for k, v in dataclasses.asdict(self).items()
            if k not in ("resume", "out", "formats", "require", "baseline", "max_drop")
        }
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()


def _accepted(fn: Callable, kwargs: dict[str, Any]) -> dict[str, Any]:
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return kwargs
    return {k: v for k, v in kwargs.items() if k in params}


def _cell_seed(seed: int, *parts: Any) -> int:
    return zlib.crc32(":".join(map(str, (seed, *parts))).encode()) & 0x7FFFFFFF


def _finite(v: float) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _encode(t: Tensor) -> str:
    buf = io.BytesIO()
    np.save(buf, t.detach().cpu().numpy().astype(np.float16))
    return base64.b64encode(buf.getvalue()).decode()


def decode_array(s: str) -> np.ndarray:
    return np.load(io.BytesIO(base64.b64decode(s))).astype(np.float32)


class Journal:
    """Per-cell results, appended as each cell finishes, so an interrupted audit resumes."""

    def __init__(self, path: Path | None, fingerprint: str, resume: bool) -> None:
        self.path, self.done = path, {}
        if path is None:
            return
        if resume and path.is_file():
            lines = path.read_text().splitlines()
            header = json.loads(lines[0]) if lines else {}
            if header.get("fingerprint") != fingerprint:
                raise AttribAuditError(
                    f"cannot resume: {path} was written by an audit with other settings; "
                    "rerun without --resume to start over"
                )
            for line in lines[1:]:
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:  # the line an interruption cut short
                    continue
                self.done[entry["cell"]] = entry
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"fingerprint": fingerprint}) + "\n")

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
    and return the JSON report (DESIGN section 9)."""
    from attrib_audit.device import resolve_device
    from attrib_audit.report import build_report, write_reports

    device = resolve_device(config.device)
    state = _prepare(config, device)
    cfg = state["cfg"]
    out = Path(cfg.out) if cfg.out else None
    journal = Journal(out / JOURNAL if out else None, cfg.fingerprint(), cfg.resume)
    rows, gallery, extras = _run_grid(state, journal, device, progress)
    report = build_report(state, rows, extras)
    if out is not None:
        write_reports(report, out, cfg.formats, gallery=gallery)
        journal.remove()
    return report


def _prepare(config: AuditConfig, device) -> dict[str, Any]:
    from attrib_audit.data import load_data
    from attrib_audit.models import load_model, sample_model, smooth_surrogate
    from attrib_audit.models.bundled import bundled_data
    from attrib_audit.registry import ATTACKS, METHODS, METRICS

    for fmt in config.formats:
        if fmt not in FORMATS:
            raise AttribAuditError(f"unknown report format {fmt!r}; valid: {', '.join(FORMATS)}")
    if config.model is None and config.preset is None:  # the quick default audit
        config = dataclasses.replace(
            config, **{k: v for k, v in QUICK.items() if getattr(config, k) is None}
        )
    path = config.model or str(sample_model())
    loaded = load_model(path, **config.load_options())
    bundled = bundled_data(path)
    data_source = config.data or (bundled[1] if bundled else None)
    if data_source is None:
        raise AttribAuditError("pass --data (a folder, an .npz/.pt file or a built-in data set)")
    card = loaded.card
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
    from attrib_audit.report.gate import validate_require

    validate_require(cfg.require, cfg.methods, metrics)
    if (
        cfg.require
        and any("adversarial_accuracy" in r for r in cfg.require)
        and not cfg.adv_accuracy
    ):
        raise AttribAuditError("a --require on adversarial_accuracy needs --adv-accuracy")
    if not cfg.epsilons or any(e < 0 for e in cfg.epsilons):
        raise AttribAuditError("--epsilon needs one or more values >= 0")
    if cfg.batch_size < 1:
        raise AttribAuditError("--batch-size must be >= 1")
    data = load_data(
        data_source,
        input_shape=card.input_shape,
        value_range=card.value_range,
        classes=card.classes,
        samples=cfg.samples,
    )
    loaded.module.to(device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unreplaced ReLUs are reported in the report
        surrogate = smooth_surrogate(loaded.module, cfg.beta)
    return {
        "cfg": dataclasses.replace(cfg, metrics=metrics),
        "loaded": loaded,
        "surrogate": surrogate,
        "data": data,
    }


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
    for name in cfg.metrics:
        entry = METRICS.get(name)
        on_raw = entry.meta.get("on") == "raw"
        params = _accepted(entry.obj, {**entry.defaults, "k": cfg.k})
        v = entry.obj(raw0 if on_raw else red0, raw1 if on_raw else red1, **params)
        values[name] = v.detach().double().cpu().numpy()
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
    n_total = n_correct = onnx_checked = onnx_disagree = 0
    agree_n = agree_pred = agree_cos = 0.0
    adv_correct = dict.fromkeys(cfg.epsilons, 0)
    for b, (x_all, y_all) in enumerate(data.batches(cfg.batch_size)):
        x_all = x_all.to(device)
        pred_all = loaded.predict(x_all).argmax(1).to(device)
        y_all = torch.where(y_all.to(device) < 0, pred_all, y_all.to(device))  # unlabelled
        correct = pred_all == y_all
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
