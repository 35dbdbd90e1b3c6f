"""The benchmark table: attributions against Captum, an IFIA iteration against its floor, the
batched attack against a per-image loop, and peak memory against batch size and samples.

Every figure is a ratio of two runs timed in this process (below 1: ours is faster), on a 28x28
model (the bundled Fashion-MNIST CNN, 64 images) and a 224x224 one (torchvision's ResNet-18,
random weights, 4 images); memory is measured in fresh processes (peak resident memory).

    python benchmarks/run.py [--quick] [--device cpu|cuda]

``--quick`` times fewer repetitions, the 224x224 model at batch 2, and the fine-tuning steps
once each; it finishes in under 10 minutes on 2 CPU cores. Each objective's fine-tuning step is
also set against a natural step and against its floor (``finetune_rows``).
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


def per_call(fn, reps: int, warm: bool = True) -> float:
    """Seconds of the fastest of ``reps`` calls of ``fn`` (the least disturbed by the rest of
    the machine), after one warm-up call unless ``warm`` is False (the same work already ran
    in this process)."""
    if warm:
        fn()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


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


def large(device, batch: int = 4):
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval()
    x = torch.rand(batch, 3, 224, 224, device=device)
    return f"224 ResNet-18, B={batch}", model.to(device), x


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

        _ifia(model, surrogate, x, t, method, 1)  # warm-up: one-off measurements, allocations

        def attack(steps, method=method):
            return _ifia(model, surrogate, x, t, method, steps)

        one, three = (per_call(partial(attack, n), reps, False) for n in (1, 3))
        iteration = max(three - one, 1e-9) / 2
        cheapest = min(per_call(partial(floor, max_batch=b), reps, False) for b in (0, None))
        out[f"IFIA iteration ({name}) vs floor"] = iteration / cheapest
        if per_image:
            loop = per_call(
                lambda method=method: [
                    _ifia(model, surrogate, x[i : i + 1], t[i : i + 1], method, 3)
                    for i in range(x.shape[0])
                ],
                max(1, reps // 3),
                warm=False,
            )
            out[f"batched IFIA ({name}) vs per-image loop"] = three / loop
    return out


def finetune_rows(device, steps: int) -> dict[str, float]:
    """Each objective's fine-tuning step (at its paper's settings) against a natural step, what
    robustness costs, and against its floor: the objective's loss, backward and optimiser step
    alone on a batch already in memory, so the rest is the loop's overhead (data, logging,
    checkpoints). A loop step is timed between the loop's progress reports, the first one left
    out as warm-up. The bundled Fashion-MNIST CNN on the bundled slice, batch 32."""
    import tempfile

    from attrib_audit.data import load_data
    from attrib_audit.models import load_model
    from attrib_audit.models.bundled import sample_model
    from attrib_audit.registry import OBJECTIVES
    from attrib_audit.training import FinetuneConfig, _objective, finetune

    model = str(sample_model())
    common = {"model": model, "data": "fashion-mnist:slice", "batch_size": 32, "audit": False}
    common["device"] = str(device)
    loaded = load_model(model)
    data = load_data(
        "fashion-mnist:slice", input_shape=loaded.card.input_shape, value_range=(0.0, 1.0)
    )
    x, y = (t.to(device) for t in data.get(torch.arange(32)))

    def loop_step(objective: str, n: int) -> float:
        stamps = []
        with tempfile.TemporaryDirectory() as tmp:
            cfg = FinetuneConfig(objective=objective, out=tmp, steps=n + 1, **common)
            finetune(cfg, progress=lambda *_: stamps.append(time.perf_counter()))
        return (stamps[-1] - stamps[0]) / n

    def floor_step(objective: str, n: int) -> float:
        net = load_model(model).module.to(device).train()
        for p in net.parameters():
            p.requires_grad_(True)
        cfg = FinetuneConfig(objective=objective, **common)
        fn, fixed, wants_gen, _ = _objective(cfg, loaded.card.value_range)
        if wants_gen:
            fixed["generator"] = torch.Generator(device=device).manual_seed(0)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)

        def step():
            opt.zero_grad(set_to_none=True)
            fn(net, x, y, **fixed).total.backward()
            opt.step()

        return per_call(step, n)

    natural = loop_step("natural", 20 * steps)
    out = {"fine-tune step natural vs its floor": natural / floor_step("natural", 20 * steps)}
    for name in OBJECTIVES.names():
        if name != "natural":
            ours = loop_step(name, steps)
            out[f"fine-tune step {name} vs natural step"] = ours / natural
            out[f"fine-tune step {name} vs its floor"] = ours / floor_step(name, steps)
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
    for build in (small, partial(large, batch=2 if args.quick else 4)):
        name, model, x = build(device)
        model = frozen(model)
        t0 = time.perf_counter()
        rows = attribution_ratios(model, x, reps)
        ireps = 1 if args.quick and build is not small else reps
        rows |= iteration_ratios(model, x, ireps, per_image=build is small)
        if build is small:
            rows |= finetune_rows(device, 1 if args.quick else 5)
        print(f"\n{name} ({time.perf_counter() - t0:.0f} s)")
        for what, ratio in rows.items():
            print(f"  {what:<42} {ratio:6.2f}")
    if device.type == "cpu":
        print()
        for line in memory_rows(args.quick):
            print(f"  {line}")


if __name__ == "__main__":
    main()
