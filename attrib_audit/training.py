"""Fine-tuning with a robust-attribution objective: a resumable loop, single process or DDP.

Every random choice of a step (batch order, PGD starts, noise) is drawn from generators seeded
by (seed, epoch) and (seed, step), so a resumed run on the CPU continues bit for bit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import inspect
import io
import json
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from attrib_audit.errors import AttribAuditError, SettingError
from attrib_audit.models.card import LoadOptions
from attrib_audit.presets import PRESETS

STATE = "training-state.pt"
OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("constant", "cosine", "step")


@dataclass
class FinetuneConfig(LoadOptions):
    """Every fine-tuning option. RAR/CACR train Fashion-MNIST with Adam at 1e-4, batch 32, for
    ~100k steps; a fine-tune of a few hundred steps needs a larger rate, hence 1e-3."""

    model: str
    objective: str = "ig-norm"
    params: dict[str, Any] = field(default_factory=dict)  # the objective's, as in its paper
    data: str | None = None  # None: the training data of a bundled model
    samples: int | None = None
    steps: int | None = None
    epochs: int | None = None  # used when steps is None; default 1
    batch_size: int = 32
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "constant"
    device: str = "auto"
    deterministic: bool = False
    seed: int = 0
    out: str = "finetuned"
    checkpoint_every: int = 100
    resume: bool = False
    train_surrogate: bool = False
    beta: float = 10.0
    audit: bool = True
    audit_data: str | None = None
    audit_samples: int | None = 100
    audit_preset: str | None = None

    def fingerprint(self) -> str:
        d = {
            k: v
            for k, v in dataclasses.asdict(self).items()
            if k
            not in (
                "resume",
                "audit",
                "audit_data",
                "audit_samples",
                "audit_preset",
                "checkpoint_every",
                "device",
                "deterministic",
            )
        }
        d["params"] = _objective_params(self).as_dict()  # lam=.5 and lam=0.5 are one run
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class FinetuneResult:
    checkpoint: Path
    card: Path
    steps: int
    last_terms: dict[str, float]
    before: dict | None
    after: dict | None
    comparison: Path | None


def parse_params(items: list[str] | None) -> dict[str, Any]:
    """``name=value`` items (``--param``) as text; the objective's settings class converts
    and checks them (:func:`_objective`)."""
    from attrib_audit.params import text

    params: dict[str, Any] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise SettingError(
                "--param", f"{item!r}: use name=value, e.g. --param lam=0.5", is_flag=True
            )
        params[name] = text(value.strip())
    return params


def _objective(cfg: FinetuneConfig, value_range):
    """The objective, its keyword arguments (its checked settings and the value range), and
    whether it takes a generator and an attack model."""
    from attrib_audit.registry import OBJECTIVES

    entry = OBJECTIVES.get(cfg.objective)
    params = _objective_params(cfg)
    sig = inspect.signature(entry.obj).parameters
    fixed = {f: getattr(params, f) for f in params.as_dict()}
    if "value_range" in sig:
        fixed["value_range"] = tuple(value_range)
    return entry.obj, fixed, "generator" in sig, "attack_model" in sig


def _objective_params(cfg: FinetuneConfig):
    """The objective's settings, checked by its settings class."""
    from attrib_audit.params import build
    from attrib_audit.registry import OBJECTIVES

    entry = OBJECTIVES.get(cfg.objective)
    return build(entry.params, cfg.params, owner=f"objective_params.{cfg.objective}")


def _default(fn: Callable, name: str) -> Any:
    p = inspect.signature(fn).parameters.get(name)
    return None if p is None or p.default is inspect.Parameter.empty else p.default


def _optimizer(cfg: FinetuneConfig, params) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    raise SettingError("optimizer", f"must be one of {', '.join(OPTIMIZERS)}")


def _schedule(cfg: FinetuneConfig, total: int) -> Callable[[int], float]:
    if cfg.schedule == "constant":
        return lambda step: 1.0
    if cfg.schedule == "cosine":
        return lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / max(1, total)))
    if cfg.schedule == "step":  # x0.1 at 50% and 75% of the run
        return lambda step: 0.1 ** ((step >= total // 2) + (step >= 3 * total // 4))
    raise SettingError("schedule", f"must be one of {', '.join(SCHEDULES)}")


def _resume(path: Path, run: dict[str, str], trainee: nn.Module, opt, sched, device) -> int:
    """Load the training state at ``path`` into the run; the step to continue from."""
    again = "rerun without {resume} to start over"
    try:
        state = torch.load(path, map_location=device, weights_only=True)
        saved = state["fingerprint"]
        step = int(state["step"])
        parts = state["model"], state["optimizer"], state["scheduler"]
    except Exception:
        raise AttribAuditError(
            f"cannot resume: {path} is damaged or not a training state of attrib-audit; {again}",
            refs=("resume",),
        ) from None
    if not isinstance(saved, dict) or set(saved) != set(run):
        raise AttribAuditError(
            f"cannot resume: {path} was written by another version; {again}", refs=("resume",)
        )
    for key, what in (
        ("model_sha256", "the checkpoint changed"),
        ("data", "the training data changed"),
        ("settings", "the settings changed"),
    ):
        if saved[key] != run[key]:
            raise AttribAuditError(
                f"cannot resume: {what} since {path} was written; {again}", refs=("resume",)
            )
    try:
        trainee.load_state_dict(parts[0])
        opt.load_state_dict(parts[1])
        sched.load_state_dict(parts[2])
    except (RuntimeError, ValueError, KeyError, TypeError):
        raise AttribAuditError(
            f"cannot resume: {path} does not fit this model; {again}", refs=("resume",)
        ) from None
    return step


def _save_state(path: Path, model: nn.Module, opt, sched, step: int, fingerprint: dict) -> None:
    from attrib_audit.io import atomic_write_bytes

    buf = io.BytesIO()
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "step": step,
            "fingerprint": fingerprint,
        },
        buf,
    )
    atomic_write_bytes(path, buf.getvalue())


def _default_audit_data(source: str) -> str:
    name, _, split = source.partition(":")
    return f"{name}:test" if split == "train" else source


def finetune(
    config: FinetuneConfig, *, progress: Callable[[int, int, dict], None] | None = None
) -> FinetuneResult:
    """Fine-tune ``config.model`` with ``config.objective``; write the new checkpoint (same
    format as the input) and card to ``config.out``, audit before and after (unless
    ``config.audit`` is False) and write ``comparison.json``. Under torchrun the steps run
    with DistributedDataParallel (NCCL on GPUs, gloo on CPUs); rank 0 writes."""
    from attrib_audit.device import deterministic

    with deterministic(config.deterministic):
        return _finetune(config, progress)


def _finetune(config: FinetuneConfig, progress) -> FinetuneResult:
    import torch.distributed as tdist

    from attrib_audit.data import data_for
    from attrib_audit.device import process_device, process_group, ranks, resolve_device
    from attrib_audit.io import OutputDir
    from attrib_audit.models import load_model, smooth_surrogate
    from attrib_audit.models.bundled import bundled_data
    from attrib_audit.models.export import SUFFIX, save_model

    cfg = config
    rank, world, _ = ranks()
    device = process_device(resolve_device(cfg.device))
    if cfg.steps is not None and cfg.steps < 1 or cfg.epochs is not None and cfg.epochs < 1:
        raise AttribAuditError("{steps} and {epochs} must be >= 1", refs=("steps", "epochs"))
    if cfg.batch_size < world:
        raise SettingError("batch_size", f"{cfg.batch_size} is smaller than the {world} processes")
    _objective_params(cfg)  # the objective and its settings, before anything loads
    if cfg.audit and cfg.audit_samples is not None and cfg.audit_samples < 1:
        raise SettingError("audit_samples", f"must be >= 1, got {cfg.audit_samples}")
    if cfg.audit and cfg.audit_preset is not None and cfg.audit_preset not in PRESETS:
        raise SettingError(
            "preset", f"{cfg.audit_preset!r} is unknown; valid presets: {', '.join(PRESETS)}"
        )
    src = Path(cfg.model)
    out = Path(cfg.out)
    loaded = load_model(src, **cfg.load_options())
    ckpt = out / f"model{SUFFIX[loaded.format]}"
    if ckpt.resolve() == src.resolve():
        raise SettingError(
            "out", f"{out} would overwrite the input checkpoint; choose another folder"
        )
    card = loaded.card
    bundled = bundled_data(src)
    source = cfg.data or (bundled[0] if bundled else None)
    if source is None:
        raise SettingError(
            "data",
            "is needed: the training data (a folder, .npz/.pt, or a built-in such as "
            "fashion-mnist:train)",
        )
    data = data_for(card, source, cfg.samples)
    if not data.labelled:
        raise AttribAuditError(f"{source} has unlabelled samples; fine-tuning needs labels")
    fn, fixed, wants_gen, wants_attacker = _objective(cfg, card.value_range)

    data.check_labels(loaded.num_classes)
    with contextlib.ExitStack() as stack:
        if rank == 0:  # one writer holds --out; the other ranks only compute
            stack.enter_context(OutputDir(out))
        module = loaded.module.to(device)
        trainee: nn.Module = smooth_surrogate(module, cfg.beta) if cfg.train_surrogate else module
        trainee.train()
        for p in trainee.parameters():
            p.requires_grad_(True)
        per_epoch = max(1, len(data) // cfg.batch_size)
        total = cfg.steps if cfg.steps is not None else per_epoch * (cfg.epochs or 1)
        opt = _optimizer(cfg, trainee.parameters())
        sched = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(cfg, total))
        state_path = out / STATE
        start = 0
        # what a resumed run must share with the interrupted one: checkpoint, data, settings
        run = {
            "model_sha256": loaded.sha256,
            "data": data.fingerprint(),
            "settings": cfg.fingerprint(),
        }
        if cfg.resume:
            if not state_path.is_file():
                raise AttribAuditError(f"nothing to resume: {state_path} does not exist")
            start = _resume(state_path, run, trainee, opt, sched, device)

        model: nn.Module = trainee
        if world > 1:
            process_group(device)
            model = nn.parallel.DistributedDataParallel(
                trainee, device_ids=[device.index] if device.type == "cuda" else None
            )
        terms: dict[str, float] = {}
        for step in range(start, total):
            epoch, pos = divmod(step, per_epoch)
            order = torch.randperm(
                len(data), generator=torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
            )
            idx = order[pos * cfg.batch_size : (pos + 1) * cfg.batch_size][rank::world]
            x, y = data.get(idx)
            x, y = x.to(device), y.to(device)
            kwargs = dict(fixed)
            if wants_gen:
                kwargs["generator"] = torch.Generator(device=device).manual_seed(
                    cfg.seed * 1_000_003 + step
                )
            if wants_attacker:
                kwargs["attack_model"] = trainee  # inner maximisation without DDP's hooks
            loss = fn(model, x, y, **kwargs)
            if not torch.isfinite(loss.total):
                raise AttribAuditError(
                    f"the loss is {loss.total.item()} at step {step}; lower "
                    "{lr} or the objective's weights",
                    refs=("lr",),
                )
            opt.zero_grad(set_to_none=True)
            loss.total.backward()
            opt.step()
            sched.step()
            terms = {k: float(v.detach()) for k, v in loss.terms.items()}
            done = step + 1
            if rank == 0 and (done % cfg.checkpoint_every == 0 or done == total):
                _save_state(state_path, trainee, opt, sched, done, run)
            if progress and rank == 0:
                progress(done, total, terms)
        if world > 1:
            tdist.barrier()
        if cfg.train_surrogate:  # the surrogate's weights go back into the original architecture
            module.load_state_dict(trainee.module.state_dict())
        module.eval()
        for p in module.parameters():
            p.requires_grad_(False)
        if rank != 0:
            tdist.destroy_process_group()
            return FinetuneResult(ckpt, ckpt.with_suffix(".toml"), total, terms, None, None, None)
        probe = module.normalize(data.get(torch.arange(min(4, len(data))))[0].to(device))
        name = f"{card.name or src.stem}-{cfg.objective}"
        save_model(module.inner, card.with_(name=name), loaded.format, ckpt, probe=probe)
        before = after = comparison = None
        if cfg.audit:
            eps = fixed.get("epsilon", _default(fn, "epsilon"))
            audit_data = cfg.audit_data or (bundled[1] if bundled else _default_audit_data(source))
            before, after, comparison = _before_after(cfg, src, ckpt, audit_data, out, eps)
        if world > 1:
            tdist.destroy_process_group()
        card_path = ckpt.with_suffix(".toml")
        return FinetuneResult(ckpt, card_path, total, terms, before, after, comparison)


def _before_after(
    cfg: FinetuneConfig, src: Path, ckpt: Path, audit_data: str, out: Path, epsilon: float | None
):
    """Audit the input and the fine-tuned model with the same settings (at the objective's
    epsilon unless a preset says otherwise); write ``comparison.json`` (both summaries and
    the change)."""
    from attrib_audit.io import atomic_write_text
    from attrib_audit.pipeline import AuditConfig, audit

    common = {
        **cfg.load_options(),
        "data": audit_data,
        "samples": cfg.audit_samples,
        "preset": cfg.audit_preset,
        "seed": cfg.seed,
        "device": cfg.device,
        "deterministic": cfg.deterministic,
        "epsilons": [epsilon] if epsilon and not cfg.audit_preset else None,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        before = audit(AuditConfig(model=str(src), out=str(out / "before"), **common))
        # the new checkpoint has its own sidecar card; the input's --card does not apply
        after = audit(
            AuditConfig(model=str(ckpt), out=str(out / "after"), **{**common, "card": None})
        )
    change = {
        m: {
            k: (
                None
                if v is None or before["summary"].get(m, {}).get(k) is None
                else v - before["summary"][m][k]
            )
            for k, v in per.items()
        }
        for m, per in after["summary"].items()
    }
    comparison = {
        "before": {
            "model": str(src),
            "summary": before["summary"],
            "clean_accuracy": before["data"]["clean_accuracy"],
        },
        "after": {
            "model": str(ckpt),
            "summary": after["summary"],
            "clean_accuracy": after["data"]["clean_accuracy"],
        },
        "change": change,
    }
    path = out / "comparison.json"
    atomic_write_text(path, json.dumps(comparison, indent=1) + "\n")
    return before, after, path
