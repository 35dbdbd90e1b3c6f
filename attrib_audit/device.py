"""``--device auto|cpu|cuda[:N]``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from attrib_audit.errors import AttribAuditError, SettingError


def ranks() -> tuple[int, int, int]:
    """(rank, world size, local rank) under torchrun; (0, 1, 0) otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))


def process_device(device: torch.device) -> torch.device:
    """This process's device: under torchrun with CUDA, the GPU of its local rank."""
    rank, world, local_rank = ranks()
    if device.type == "cuda" and world > 1:
        return torch.device("cuda", local_rank)
    return device


def process_group(device: torch.device) -> None:
    """Join torchrun's process group (NCCL on GPUs, gloo on CPUs) unless joined already."""
    import torch.distributed as tdist

    if not tdist.is_initialized():
        tdist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def resolve_device(spec: str = "auto") -> torch.device:
    """The torch device a spec names; a CUDA spec on a machine without CUDA is a clear error."""
    spec = spec.strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise SettingError(
                "device", f"{spec}: no CUDA device is available on this machine; use cpu or auto"
            )
        try:
            device = torch.device(spec)
        except RuntimeError:
            raise SettingError("device", f"{spec!r} is not a valid device") from None
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise SettingError(
                "device", f"{spec}: this machine has {count} CUDA device(s) (0..{count - 1})"
            )
        return device
    raise SettingError("device", f"must be auto, cpu, cuda or cuda:N, got {spec!r}")


def module_on(module: torch.nn.Module, device) -> torch.nn.Module:
    """``module`` on ``device``: itself when it is there already, else a copy (the caller's
    module is not moved)."""
    import copy

    where = next(iter(module.parameters()), None)
    where = where if where is not None else next(iter(module.buffers()), None)
    if where is None or where.device == torch.device(device):
        return module
    return copy.deepcopy(module).to(device)


@contextmanager
def deterministic(enabled: bool) -> Iterator[None]:
    """``--deterministic``: torch's deterministic algorithms for the duration (cuDNN's too, and
    cuBLAS's fixed workspace when CUDA has not started yet), so two runs on one GPU give the
    same floats; the caller's settings are restored on the way out. An operation with no
    deterministic implementation on the device is a clear error, not a silent fallback.
    On the CPU the audit is deterministic already; the flag costs nothing there."""
    if not enabled:
        yield
        return
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when cuBLAS starts
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    except RuntimeError as exc:
        if "deterministic" not in str(exc):
            raise
        op = str(exc).strip().partition(" does not have a deterministic")[0]
        raise AttribAuditError(
            f"{op[:80]} has no deterministic implementation on this device; rerun without "
            "{deterministic}",
            refs=("deterministic",),
        ) from None
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2:]
