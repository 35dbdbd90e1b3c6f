"""The benchmark table: attributions against Captum, an IFIA iteration against its floor, the
batched attack against a per-image loop, and peak memory against batch size and samples.

Every figure is a ratio of two runs timed in this process (below 1: ours is faster), on a 28x28
model (the bundled Fashion-MNIST CNN, 64 images) and a 224x224 one (torchvision's ResNet-18,
random weights, 4 images); memory is measured in fresh processes (peak resident memory).

    python benchmarks/run.py [--quick] [--device cpu|cuda]

``--quick`` times fewer repetitions and skips the 224x224 per-image reference; it finishes in a
few minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def per_call(fn, reps: int) -> float:
    """Seconds per call of ``fn``, after one warm-up call."""
    fn()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def small(device):
    from attrib_audit.data import load_data
    from attrib_audit.models import load_model
    from attrib_audit.models.bundled import sample_model

    loaded = load_model(sample_model())
    data = load_data(
        "fashion-mnist:slice", input_shape=loaded.card.input_shape, value_range=(0.0, 1.0)
    )
    x, _ = data.get(torch.arange(64))
    return "28x28 CNN, B=64", loaded.module.to(device), x.to(device)


def large(device):
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval()
    return "224 ResNet-18, B=4", model.to(device), torch.rand(4, 3, 224, 224, device=device)


def frozen(model):
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def attribution_ratios(model, x, reps: int) -> dict[str, float]:
    """SM and IG-50 (trapezoid) against Captum's Saliency and IntegratedGradients."""
    from captum.attr import IntegratedGradients, Saliency

    from attrib_audit.attributions import integrated_gradients, saliency

    with torch.no_grad():
        t = model(x).argmax(1)
    ig, sm = IntegratedGradients(model), Saliency(model)
    out = {}
    ours = per_call(lambda: saliency(model, x, t), reps)
    theirs = per_call(lambda: sm.attribute(x, target=t, abs=False), reps)
    out["SM vs Captum"] = ours / theirs
    ours = per_call(lambda: integrated_gradients(model, x, t, steps=50), max(1, reps // 3))
    theirs = per_call(
        lambda: ig.attribute(x, target=t, n_steps=50, method="riemann_trapezoid"),
        max(1, reps // 3),
    )
    out["IG-50 vs Captum"] = ours / theirs
    return out


def _ifia(model, surrogate, x, t, method, steps):
    from attrib_audit.attacks.feature_importance import ifia

    k = max(1, x[0, 0].numel() // 8)
    eps = 8 / 255
    return ifia(model, surrogate, x, t, method, epsilon=eps, steps=steps, step_size=eps / 8, k=k)


def iteration_ratios(model, x, reps: int, per_image: bool) -> dict[str, float]:
    """One IFIA iteration (the difference of 3 and 1 steps, over 2) against its floor: the
    surrogate's forward and double backward through the map, plus the model's own map (what
    keep-best needs), the faster of all rows in one call with every graph kept (the least
    work, whatever the memory) and the default chunks; and the batched attack against a
    per-image loop of the same steps."""
    from attrib_audit.attributions import integrated_gradients, saliency
    from attrib_audit.models.surrogate import smooth_surrogate

    surrogate = frozen(smooth_surrogate(model, 10.0))
    with torch.no_grad():
        t = model(x).argmax(1)
    out = {}
    for name, method in {
        "SM": saliency,
        "IG-16": lambda m, z, y, create_graph=False, max_batch=None: integrated_gradients(
            m, z, y, steps=16, create_graph=create_graph, max_batch=max_batch
        ),
    }.items():

        def floor(method=method, max_batch=0):
            z = x.clone().requires_grad_(True)
            m = method(surrogate, z, t, create_graph=True, max_batch=max_batch)
            torch.autograd.grad(m.abs().sum(), z)
            method(model, x, t, max_batch=max_batch)

        one = per_call(lambda method=method: _ifia(model, surrogate, x, t, method, 1), reps)
        three = per_call(lambda method=method: _ifia(model, surrogate, x, t, method, 3), reps)
        iteration = max(three - one, 1e-9) / 2
        cheapest = min(per_call(partial(floor, max_batch=b), reps) for b in (0, None))
        out[f"IFIA iteration ({name}) vs floor"] = iteration / cheapest
        if per_image:
            loop = per_call(
                lambda method=method: [
                    _ifia(model, surrogate, x[i : i + 1], t[i : i + 1], method, 3)
                    for i in range(x.shape[0])
                ],
                max(1, reps // 3),
            )
            out[f"batched IFIA ({name}) vs per-image loop"] = three / loop
    return out


def memory_rows(quick: bool) -> list[str]:
    """Peak memory of one IFIA IG-16 step against the batch size (benchmarks/memory.py)."""
    sizes = "1,2" if quick else "1,4,16"
    cmd = [sys.executable, str(HERE / "memory.py"), "--arch", "resnet18", "--batch-sizes", sizes]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    reps = 3 if args.quick else 10
    print(
        f"attrib-audit benchmarks on {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} torch threads, torch {torch.__version__}, {device}"
    )
    print("ratio = ours / reference, timed in this process; below 1 is faster")
    for build in (small, large):
        name, model, x = build(device)
        model = frozen(model)
        t0 = time.perf_counter()
        rows = attribution_ratios(model, x, reps)
        ireps = 1 if args.quick and build is large else max(2, reps // 3)
        rows |= iteration_ratios(model, x, ireps, per_image=build is small)
        print(f"\n{name} ({time.perf_counter() - t0:.0f} s)")
        for what, ratio in rows.items():
            print(f"  {what:<42} {ratio:6.2f}")
    if device.type == "cpu":
        print()
        for line in memory_rows(args.quick):
            print(f"  {line}")


if __name__ == "__main__":
    main()
