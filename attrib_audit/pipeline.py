"""The audit: the grid method x attack x epsilon over the correctly classified samples.

Three typed stages: :func:`plan` checks and loads everything (no attack runs and no file is
written before it returns), :func:`run_grid` attacks and measures, cell by cell, into a
:class:`Grid`, and :func:`~attrib_audit.report.build.build_report` turns both into the JSON
report. The caller's config is not changed; the caller's module is not moved.
"""

from __future__ import annotations

import contextlib
import dataclasses
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

from attrib_audit.arrays import encode_array
from attrib_audit.attacks._common import Draws
from attrib_audit.config import FORMATS, QUICK, AuditConfig
from attrib_audit.device import (
    deterministic,
    module_on,
    process_device,
    process_group,
    ranks,
    resolve_device,
)
from attrib_audit.errors import AttribAuditError, SettingError
from attrib_audit.journal import JOURNAL, Journal
from attrib_audit.metrics.reduce import constant
from attrib_audit.params import build
from attrib_audit.plan import Bound, Grid, Plan
from attrib_audit.registry import ATTACKS, METHODS, METRICS

__all__ = ["JOURNAL", "AuditConfig", "Bound", "Grid", "Plan", "audit", "plan", "run_grid"]


def _cell_seed(seed: int, *parts: Any) -> int:
    return zlib.crc32(":".join(map(str, (seed, *parts))).encode()) & 0x7FFFFFFF


def _finite(v: float) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def audit(
    config: AuditConfig, *, progress: Callable[[int, int, str], None] | None = None
) -> dict[str, Any] | None:
    """Run the audit described by ``config``; write its reports to ``config.out`` (when set)
    and return the JSON report (``README.md``, "The report").

    Every check of the input runs before the first attack; a bad input raises
    :class:`AttribAuditError` and leaves no file behind.

    Under torchrun each rank audits every world-th batch and journals its own cells; rank 0
    gathers the results, writes the reports and returns the report, the other ranks None.
    """
    with deterministic(config.deterministic):
        return _audit(config, progress)


def _audit(config: AuditConfig, progress) -> dict[str, Any] | None:
    from attrib_audit.io import OutputDir
    from attrib_audit.report import build_report, render_reports, write_rendered

    device = process_device(resolve_device(config.device))
    the_plan = plan(config, device)
    cfg, rank, world = the_plan.config, the_plan.rank, the_plan.world
    if world > 1:  # under torchrun: each rank audits every world-th batch; rank 0 reports
        process_group(device)
        progress = progress if rank == 0 else None
    if not cfg.out:
        grid = run_grid(the_plan, Journal(None, {}, False), progress)
        return build_report(the_plan, grid) if rank == 0 else None
    header = {  # only a journal needs it: the data fingerprint reads every sample once more
        "model_sha256": the_plan.loaded.sha256,
        "data": the_plan.data.fingerprint(),
        "settings": the_plan.settings(),
    }
    out = Path(cfg.out)
    with contextlib.ExitStack() as stack:
        held = stack.enter_context(OutputDir(out)) if rank == 0 else None
        _barrier(world)  # rank 0 holds --out before any rank journals into it
        journal = Journal(out / journal_name(rank, world), header, cfg.resume)
        if journal.created and held is not None:
            held.discard_on_error(journal.path)
        grid = run_grid(the_plan, journal, progress)
        report = None
        if rank == 0:
            report = build_report(the_plan, grid)
            write_rendered(out, render_reports(report, cfg.formats, gallery=grid.gallery))
        _barrier(world)  # the report is written: every rank's journal can go
        journal.remove()
    return report


def journal_name(rank: int, world: int) -> str:
    """Each rank's journal, so a sharded audit resumes rank by rank."""
    return JOURNAL if world == 1 else JOURNAL.replace(".jsonl", f".rank{rank}-of-{world}.jsonl")


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as tdist

        tdist.barrier()


def _check_settings_target(registry, given: dict[str, dict]) -> None:
    """The user's settings name registered entries: a misspelt name is refused; the settings
    of an entry this audit does not run are not used (one config file can serve audits that
    run different methods)."""
    for name in sorted(given):
        if name not in registry:
            raise SettingError(f"{registry.kind}_params", registry.unknown_message(name))


def _bind_all(registry, names: list[str], settings: dict[str, dict], fill: dict) -> tuple:
    """Each named entry with its settings checked; settings that are None and named in
    ``fill`` take its value (an attack's k: the audit's k)."""
    bound = []
    for name in names:
        entry = registry.get(name)
        owner = f"{registry.kind}_params.{name}"
        params = build(entry.params, settings.get(name, {}), owner=owner)
        missing = {
            f.name: fill[f.name]
            for f in dataclasses.fields(params)
            if getattr(params, f.name) is None and f.name in fill
        }
        bound.append(Bound(entry, dataclasses.replace(params, **missing) if missing else params))
    return tuple(bound)


def plan(config: AuditConfig, device) -> Plan:
    """Load and check everything the audit needs; no attack runs and no file is written."""
    from attrib_audit.data import data_for
    from attrib_audit.models import load_model, sample_model, smooth_surrogate
    from attrib_audit.models.bundled import bundled_data
    from attrib_audit.report.gate import load_report

    for fmt in config.formats:
        if fmt not in FORMATS:
            raise SettingError("formats", f"{fmt!r} is unknown; valid: {', '.join(FORMATS)}")
    if config.model is None and config.preset is None:  # the quick default audit
        config = dataclasses.replace(
            config, **{k: v for k, v in QUICK.items() if getattr(config, k) is None}
        )
    if config.max_drop is not None and config.baseline is None:
        raise SettingError(
            "max_drop", "needs a baseline report to compare with: {baseline}", refs=("baseline",)
        )
    drop = config.max_drop
    if drop is not None and not (math.isfinite(drop) and drop >= 0):
        raise SettingError("max_drop", f"must be a finite number >= 0, got {config.max_drop}")
    _bind(config, config.resolved(None), None)  # every setting checked before the model loads
    certify = _certify_params(config)
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
        raise SettingError("data", "is needed: a folder, an .npz/.pt file or a built-in data set")
    c, h, w = card.input_shape
    cfg = config.resolved(h * w)
    cfg = dataclasses.replace(cfg, data=data_source, model=path)
    methods, attacks, metrics = _bind(config, cfg, h * w)
    if certify is not None:
        from attrib_audit.certify import check_radius

        check_radius(certify, h * w)
    data = data_for(card, data_source, cfg.samples)
    data.check_labels(loaded.num_classes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unreplaced ReLUs are reported in the report
        module = module_on(loaded.module, device)
        surrogate = smooth_surrogate(module, cfg.beta)
    _probe_methods(methods, module, card, cfg, data.get(torch.arange(1))[0].to(device))
    rank, world, _ = ranks()
    return Plan(
        config=dataclasses.replace(cfg, metrics=[m.name for m in metrics]),
        methods=methods,
        attacks=attacks,
        metrics=metrics,
        loaded=dataclasses.replace(loaded, module=module),
        surrogate=surrogate,
        data=data,
        baseline=baseline,
        device=torch.device(device),
        certify=certify,
        rank=rank,
        world=world,
    )


def _certify_params(config: AuditConfig):
    """The certification's settings, checked (None when the audit does not certify)."""
    if config.certify is None:
        return None
    from attrib_audit.certify import CertifyParams

    return build(CertifyParams, config.certify, owner="certify")


def _probe_methods(methods: tuple[Bound, ...], module, card, cfg: AuditConfig, x) -> None:
    """Every method once on one sample: a method that cannot run on this model (a Grad-CAM
    layer it does not have) stops the audit before any attack."""
    with torch.no_grad():
        target = module(x).argmax(1)
    vr = tuple(card.value_range)
    for m in methods:
        m.bind(value_range=vr, seed=0, explain=cfg.explain, max_batch=cfg.max_batch)(
            module, x, target
        )


def _bind(config: AuditConfig, cfg: AuditConfig, pixels: int | None) -> tuple:
    """The methods, attacks and metrics of the resolved ``cfg`` with their settings checked,
    and every other setting checked (``pixels`` None: those that need the model wait)."""
    from attrib_audit.report.gate import validate_require

    for registry in (METHODS, ATTACKS, METRICS):
        _check_settings_target(registry, getattr(config, f"{registry.kind}_params"))
    methods = _bind_all(METHODS, cfg.methods, cfg.method_params, {})
    attacks = _bind_all(ATTACKS, cfg.attacks, cfg.attack_params, {"k": cfg.k})
    for a in attacks:
        if not a.entry.facts.keeps_prediction:
            raise SettingError(
                "attacks",
                f"{a.name!r} changes predictions and is not an attribution attack; "
                "use {adv_accuracy} for adversarial accuracy",
                refs=("adv_accuracy",),
            )
    metrics = _bind_all(METRICS, cfg.metrics or METRICS.names(), cfg.metric_params, {})
    certified = ["certified_topk"] if cfg.certify is not None else []
    if any("certified_topk" in r for r in cfg.require) and not certified:
        raise SettingError("require", "on certified_topk needs {certify}", refs=("certify",))
    if not cfg.attacks and not certified:
        raise SettingError("attacks", "is empty: name one or more attacks")
    validate_require(cfg.require, cfg.methods, [m.name for m in metrics] + certified)
    if any("adversarial_accuracy" in r for r in cfg.require) and not cfg.adv_accuracy:
        raise SettingError(
            "require", "on adversarial_accuracy needs {adv_accuracy}", refs=("adv_accuracy",)
        )
    _check_settings(cfg, attacks, pixels)
    return methods, attacks, metrics


def _check_settings(cfg: AuditConfig, attacks: tuple[Bound, ...], pixels: int | None) -> None:
    """Settings that would make the audit trivial or meaningless are refused (the numbers it
    would give prove nothing, so no gate may pass on them)."""
    if not cfg.epsilons or any(not math.isfinite(e) or e < 0 for e in cfg.epsilons):
        raise SettingError("epsilons", "needs one or more finite radii >= 0")
    if max(cfg.epsilons) <= 0:
        raise SettingError(
            "epsilons", "has only radius 0, so nothing would be attacked; give a radius > 0"
        )
    iterative = [a.name for a in attacks if a.entry.facts.iterative]
    if iterative and cfg.steps < 1:
        raise SettingError(
            "steps", f"must be >= 1 for {', '.join(iterative)} (0 steps returns the input)"
        )
    if cfg.adv_accuracy and cfg.pgd_steps < 1:
        raise SettingError("pgd_steps", "must be >= 1 for {adv_accuracy}", refs=("adv_accuracy",))
    for name in ("step_size", "pgd_step_size"):
        value = getattr(cfg, name)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise SettingError(name, f"must be a finite number > 0, got {value}")
    ks = [("k", cfg.k)] + [
        (f"attack_params.{a.name}.k", a.params.k) for a in attacks if hasattr(a.params, "k")
    ]
    for name, k in ks if pixels is not None else ():
        if not 1 <= k < pixels:
            raise SettingError(
                name,
                f"{k} must be between 1 and {pixels - 1}: the maps have {pixels} pixels, "
                "and the top-k of all pixels is always kept",
            )
    if cfg.batch_size < 1:
        raise SettingError("batch_size", f"must be >= 1, got {cfg.batch_size}")
    if cfg.max_batch is not None and cfg.max_batch < 0:
        raise SettingError("max_batch", f"must be >= 0, got {cfg.max_batch}")
    if not (math.isfinite(cfg.beta) and cfg.beta > 0):
        raise SettingError("beta", f"must be a finite number > 0, got {cfg.beta}")
    if cfg.gallery < 0:
        raise SettingError("gallery", f"must be >= 0, got {cfg.gallery}")


@dataclass
class _Batch:
    """The correctly classified samples of one data batch, with their clean maps cached."""

    b: int
    x: Tensor
    y: Tensor
    pred: Tensor
    idx: Tensor
    label: Tensor  # the data's labels, -1 where it has none (``y`` is then the prediction)
    clean: dict[tuple[str, int], tuple[Tensor, Tensor]] = field(default_factory=dict)


def _method_fn(p: Plan, name: str, seed: int) -> Callable[..., Tensor]:
    """The method with the audit's settings bound: ``fn(model, x, target, create_graph=...)``.
    Stochastic methods get a fixed seed per cell, so clean and perturbed maps see the same
    noise."""
    cfg = p.config
    return p.method(name).bind(
        value_range=tuple(p.loaded.card.value_range),
        seed=seed,
        explain=cfg.explain,
        max_batch=cfg.max_batch,
    )


def _metric_values(
    p: Plan, maps: tuple[Tensor, Tensor, Tensor, Tensor], x: Tensor, x_adv: Tensor
) -> dict[str, Tensor]:
    """Every configured metric between clean and perturbed maps (raw and reduced, as
    :func:`_maps` gives them), per sample, as float64 on the CPU; NaN where a map is not
    finite or the clean map is flat."""
    raw0, red0, raw1, red1 = maps
    values = {}
    finite = (torch.isfinite(raw0).flatten(1).all(1) & torch.isfinite(raw1).flatten(1).all(1)).cpu()
    finite &= ~constant(red0).cpu()  # a flat clean map: no metric of it means anything
    for metric in p.metrics:
        on_raw = metric.entry.facts.on == "raw"
        fn = metric.bind(k=p.config.k, x=x, x_adv=x_adv)
        v = fn(raw0 if on_raw else red0, raw1 if on_raw else red1).detach().double().cpu()
        values[metric.name] = torch.where(finite, v, torch.nan)  # NaN maps: no evidence
    return values


def _over_draws(p: Plan, per_draw: list[dict[str, Tensor]]) -> dict[str, np.ndarray]:
    """Each metric's per-sample values aggregated over the draws, as the metric declares (a
    draw that changed the prediction is NaN and left out)."""
    from attrib_audit.metrics.sensitivity import over_draws

    return {
        m.name: over_draws(
            torch.stack([d[m.name] for d in per_draw]), m.entry.facts.over_draws
        ).numpy()
        for m in p.metrics
    }


def _maps(p: Plan, batch: _Batch, name: str, seed: int, x_adv: Tensor):
    """(clean raw, clean reduced, perturbed raw, perturbed reduced) maps of the audited model."""
    from attrib_audit.metrics import reduce_map

    fn, model, reduce = _method_fn(p, name, seed), p.loaded.module, p.config.reduce
    if (name, seed) not in batch.clean:
        raw = fn(model, batch.x, batch.pred).detach()
        batch.clean[(name, seed)] = (raw, reduce_map(raw, reduce))
    raw0, red0 = batch.clean[(name, seed)]
    raw1 = fn(model, x_adv, batch.pred).detach()
    return raw0, red0, raw1, reduce_map(raw1, reduce)


def _attack_cell(p: Plan, batch: _Batch, m: str, attack: Bound, e: float) -> dict[str, Any]:
    """One cell of the grid: attack method ``m`` with ``attack`` at radius ``e``; per-sample
    rows for ``m`` (and, with transfer, for every other method); gallery candidates at the
    largest epsilon."""
    cfg, loaded = p.config, p.loaded
    model, vr = loaded.module, tuple(loaded.card.value_range)
    atk = attack.name
    # not the attack's name: the attacks of a cell draw the same noise, so a sampling and a
    # searching attack are compared draw by draw, and a stochastic method's clean map is shared
    seed = _cell_seed(cfg.seed, batch.b, m, e)
    kwargs = attack.kwargs(
        steps=cfg.steps,
        step_size=cfg.step_size or 2.5 * e / max(1, cfg.steps),
        reduce=cfg.reduce,
        value_range=vr,
        seed=seed,
    )
    method = _method_fn(p, m, seed)
    result = attack.entry.obj(model, p.surrogate, batch.x, batch.pred, method, epsilon=e, **kwargs)
    sampled = isinstance(result, Draws)  # several draws per sample: each measured
    targets = [m] + ([o for o in cfg.methods if o != m] if cfg.transfer else [])
    seeds = {t: seed if t == m else _cell_seed(cfg.seed, batch.b, t, e) for t in targets}
    per_draw: dict[str, list[dict[str, Tensor]]] = {t: [] for t in targets}
    kept = torch.zeros(batch.x.shape[0], dtype=torch.bool, device=p.device)
    disagreements, x_adv = 0, batch.x
    shown: dict[str, Tensor] = {}  # per target, the perturbed (reduced) map the gallery shows
    for x_draw in result if sampled else (result,):
        x_draw = x_draw.detach()
        audited = loaded.predict(x_draw).argmax(1).to(p.device)
        kept_draw = audited == batch.pred
        if loaded.onnx_session is not None:  # the converted module vs the graph itself
            with torch.no_grad():
                disagreements += int((model(x_draw).argmax(1) != audited).sum())
        # the gallery shows, per sample, the first draw that kept the prediction
        first = kept_draw & ~kept if sampled else torch.ones_like(kept_draw)
        x_adv = torch.where(first[:, None, None, None], x_draw, x_adv)
        kept |= kept_draw
        for t in targets:
            maps = _maps(p, batch, t, seeds[t], x_draw)
            values = _metric_values(p, maps, batch.x, x_draw)
            if sampled:  # a draw that changed the prediction is no evidence (as in Quantus)
                values = {k: torch.where(kept_draw.cpu(), v, torch.nan) for k, v in values.items()}
            shown[t] = torch.where(first[:, None, None], maps[3], shown.get(t, maps[1]))
            per_draw[t].append(values)
    rows, gallery = [], []
    for t in targets:
        if sampled and not bool(kept.all()):  # no draw kept it: x itself, as every attack
            raw0, red0 = batch.clean[(t, seeds[t])]
            at_x = _metric_values(p, (raw0, red0, raw0, red0), batch.x, batch.x)
            none = (~kept).cpu()
            per_draw[t].append({k: torch.where(none, v, torch.nan) for k, v in at_x.items()})
        values = _over_draws(p, per_draw[t])
        red0, red1 = batch.clean[(t, seeds[t])][1], shown[t]
        flat = constant(red0).cpu()

        def facts(i: int, values=values) -> dict[str, Any]:
            return {
                "index": int(batch.idx[i]),
                "label": int(batch.label[i]),
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
                "flat_map": bool(flat[i]),
            }
            for i in range(batch.x.shape[0])
        ]
        if t == m and e == max(cfg.epsilons):
            gallery = [
                {
                    **facts(i),
                    "x": encode_array(batch.x[i]),
                    "x_adv": encode_array(x_adv[i]),
                    "map": encode_array(red0[i]),
                    "map_adv": encode_array(red1[i]),
                }
                for i in _worst(values, cfg.gallery)
            ]
    return {"rows": rows, "onnx_disagreements": disagreements, "gallery": gallery}


def _adv_correct(p: Plan, x: Tensor, y: Tensor, b: int, e: float) -> dict[str, int]:
    """How many samples PGD at radius ``e`` leaves correctly classified (``adv_correct``)."""
    cfg, loaded = p.config, p.loaded
    x_adv = ATTACKS.get("pgd").obj(
        loaded.module,
        None,
        x,
        y,
        None,
        epsilon=e,
        steps=cfg.pgd_steps,
        step_size=cfg.pgd_step_size or 2.5 * e / max(1, cfg.pgd_steps),
        value_range=tuple(loaded.card.value_range),
        seed=_cell_seed(cfg.seed, b, "pgd", e),
    )
    return {"adv_correct": int((loaded.predict(x_adv).argmax(1).to(p.device) == y).sum())}


def run_grid(
    p: Plan, journal: Journal, progress: Callable[[int, int, str], None] | None = None
) -> Grid:
    """Every cell of the grid, batch by batch; cells already in ``journal`` are not rerun."""
    from attrib_audit.models.surrogate import surrogate_agreement

    cfg, loaded, device = p.config, p.loaded, p.device
    n_batches = math.ceil(len(p.data) / cfg.batch_size)
    per_batch = len(p.methods) * (len(p.attacks) * len(cfg.epsilons) + (p.certify is not None))
    owned = len(_owned(n_batches, p.rank, p.world))
    total = owned * (per_batch + (len(cfg.epsilons) if cfg.adv_accuracy else 0))
    done = 0

    def tick(label: str) -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, total, label)

    rows: dict[int, list[dict]] = {}  # by batch, so the ranks' rows merge in batch order
    certified: dict[int, dict[str, dict]] = {}  # by batch, then method
    gallery: dict[str, list[dict]] = {m.name: [] for m in p.methods}
    counts = dict.fromkeys(COUNTS, 0.0)
    adv_correct = dict.fromkeys(cfg.epsilons, 0)
    for b in _owned(n_batches, p.rank, p.world):
        idx_all = torch.arange(b * cfg.batch_size, min((b + 1) * cfg.batch_size, len(p.data)))
        x_all, y_all = p.data.get(idx_all)
        x_all, idx_all = x_all.to(device), idx_all.to(device)
        logits = loaded.predict(x_all).to(device)
        finite = torch.isfinite(logits).all(1)  # no evidence from a sample without logits
        counts["n_nonfinite"] += int((~finite).sum())
        pred_all = logits.argmax(1)
        label_all = y_all.to(device)
        y_all = torch.where(label_all < 0, pred_all, label_all)  # unlabelled: the prediction
        correct = (pred_all == y_all) & finite
        counts["n_total"] += x_all.shape[0]
        counts["n_correct"] += int(correct.sum())
        for e in cfg.epsilons if cfg.adv_accuracy else ():
            cell = f"{b}|pgd|{e!r}"
            entry = journal.entry(cell, partial(_adv_correct, p, x_all, y_all, b, e))
            adv_correct[e] += entry["adv_correct"]
            tick(f"PGD eps={e:.4g}")
        batch = _Batch(
            b,
            x_all[correct],
            y_all[correct],
            pred_all[correct],
            idx_all[correct],
            label_all[correct],
        )
        if batch.x.shape[0] == 0:
            for _ in range(per_batch):
                tick("no correct samples in this batch")
            continue
        a = surrogate_agreement(loaded.module, p.surrogate, batch.x, max_batch=cfg.max_batch)
        counts["agree_n"] += a.n
        counts["agree_pred"] += a.prediction_agreement * a.n
        counts["agree_cos"] += a.map_cosine * a.n
        for m in p.methods:
            if p.certify is not None:
                entry = journal.entry(
                    f"{b}|{m.name}|certify", partial(_certify_cell, p, batch, m.name)
                )
                certified.setdefault(b, {})[m.name] = entry
                tick(f"{m.name} certify")
            for attack in p.attacks:
                for e in cfg.epsilons:
                    cell = f"{b}|{m.name}|{attack.name}|{e!r}"
                    entry = journal.entry(cell, partial(_attack_cell, p, batch, m.name, attack, e))
                    rows.setdefault(b, []).extend(entry["rows"])
                    kept = sorted(gallery[m.name] + entry["gallery"], key=_gallery_key)
                    gallery[m.name] = kept[: cfg.gallery]  # the worst so far, not every cell's
                    counts["onnx_disagree"] += entry["onnx_disagreements"]
                    if loaded.onnx_session is not None:
                        counts["onnx_checked"] += batch.x.shape[0]
                    tick(f"{m.name} x {attack.name} eps={e:.4g}")
    mine = {
        "rows": rows,
        "gallery": gallery,
        "counts": counts,
        "adv": adv_correct,
        "certified": certified,
    }
    parts = _gathered(mine, p.world)
    rows = {b: r for part in parts for b, r in part["rows"].items()}
    certified = {b: c for part in parts for b, c in part["certified"].items()}
    for m in gallery:
        both = [it for part in parts for it in part["gallery"][m]]
        gallery[m] = sorted(both, key=_gallery_key)[: cfg.gallery]
    c = {k: sum(part["counts"][k] for part in parts) for k in COUNTS}
    adv = {e: sum(part["adv"][e] for part in parts) for e in cfg.epsilons}
    n_total = int(c["n_total"])
    return Grid(
        rows=[r for b in sorted(rows) for r in rows[b]],
        gallery=gallery,
        n_samples=n_total,
        n_correct=int(c["n_correct"]),
        n_nonfinite_logits=int(c["n_nonfinite"]),
        prediction_agreement=c["agree_pred"] / c["agree_n"] if c["agree_n"] else None,
        map_cosine=c["agree_cos"] / c["agree_n"] if c["agree_n"] else None,
        onnx_checked=int(c["onnx_checked"]),
        onnx_disagreements=int(c["onnx_disagree"]),
        adv_accuracy={e: adv[e] / n_total for e in cfg.epsilons}
        if cfg.adv_accuracy and n_total
        else None,
        execution={"processes": p.world, "devices": _gathered(str(device), p.world)},
        certification=_joined(certified, [m.name for m in p.methods]) if p.certify else None,
    )


def _joined(certified: dict[int, dict[str, dict]], methods: list[str]) -> dict[str, dict]:
    """Per method, each certificate value's per-sample list over the batches, in order."""
    out: dict[str, dict[str, list]] = {m: {} for m in methods}
    for b in sorted(certified):
        for m, values in certified[b].items():
            for key, v in values.items():
                if key == "curve":  # per radius, a list of per-sample values
                    cur = out[m].setdefault(key, [[] for _ in v])
                    for acc, part in zip(cur, v, strict=True):
                        acc.extend(part)
                else:
                    out[m].setdefault(key, []).extend(v)
    return out


def _certify_cell(p: Plan, batch: _Batch, m: str) -> dict[str, Any]:
    """The certificate of method ``m``'s top-k pixels for the batch's samples."""
    from attrib_audit.certify import certify_topk, summary

    seed = _cell_seed(p.config.seed, batch.b, m, "certify")
    gen = torch.Generator(device=batch.x.device)
    gen.manual_seed(seed)
    cert = certify_topk(
        _method_fn(p, m, seed),
        p.loaded.module,
        batch.x,
        batch.pred,
        k=p.config.k,
        params=p.certify,
        reduce=p.config.reduce,
        generator=gen,
    )
    return summary(cert, p.certify)


# what each rank counts, summed over the ranks
COUNTS = (
    "n_total",
    "n_correct",
    "n_nonfinite",
    "agree_n",
    "agree_pred",
    "agree_cos",
    "onnx_checked",
    "onnx_disagree",
)


def _owned(n_batches: int, rank: int, world: int) -> range:
    """The batches this rank audits: every ``world``-th, from its rank (all of them alone)."""
    return range(rank, n_batches, world)


def _gathered(obj: Any, world: int) -> list[Any]:
    """``obj`` from every rank, in rank order (``[obj]`` in a single process)."""
    if world == 1:
        return [obj]
    import torch.distributed as tdist

    out: list[Any] = [None] * world
    tdist.all_gather_object(out, obj)
    return out


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
