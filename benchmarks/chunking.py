"""How the row chunking of folded attributions pays off (an IFIA step's cost on CPU).

Runs, in one process, on the bundled Fashion-MNIST model and 64 slice images:

- floor: a bare forward + backward of the same 64 x 50 rows (the cost of one first-order IG);
- IG-50, first order, in one call (``max_batch=0``) and auto-chunked (default);
- the second-order step of an IFIA top-k attack on IG-50, in one call and auto-chunked.

Prints each as a ratio to the floor, and the speed-up of chunking. Usage:

    python benchmarks/chunking.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import time

import torch

from attrib_audit.attributions.integrated import integrated_gradients
from attrib_audit.data import load_data
from attrib_audit.models import load_model
from attrib_audit.models.bundled import sample_model
from attrib_audit.models.surrogate import smooth_surrogate

STEPS = 50


def per_call(fn, seconds: float) -> float:
    fn()  # warm-up
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or n < 3:
        fn()
        n += 1
    return (time.perf_counter() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--samples", type=int, default=64)
    args = ap.parse_args()
    torch.manual_seed(0)
    loaded = load_model(sample_model())
    model = loaded.module.eval()
    surrogate = smooth_surrogate(model)
    data = load_data(
        "fashion-mnist:slice",
        input_shape=loaded.card.input_shape,
        value_range=loaded.card.value_range,
    )
    x, _ = data.get(torch.arange(args.samples))
    y = model(x).argmax(1)
    rows = x.repeat(STEPS, 1, 1, 1)

    def floor() -> None:
        r = rows.clone().requires_grad_(True)
        model(r).gather(1, y.repeat(STEPS)[:, None]).sum().backward()

    def first(max_batch):
        return lambda: integrated_gradients(model, x, y, steps=STEPS, max_batch=max_batch)

    def second(max_batch):
        def run() -> None:
            xa = x.clone().requires_grad_(True)
            m = integrated_gradients(
                surrogate, xa, y, steps=STEPS, create_graph=True, max_batch=max_batch
            )
            top = m.abs().sum(1).flatten(1).topk(100, dim=1).values.sum()
            torch.autograd.grad(top, xa)

        return run

    base = per_call(floor, args.seconds)
    print(f"{args.samples} images x IG-{STEPS}, torch threads {torch.get_num_threads()}")
    print(f"floor (forward+backward of {rows.shape[0]} rows): {base * 1e3:.0f} ms")
    results = {}
    for name, fn in [
        ("IG first order, one call", first(0)),
        ("IG first order, auto chunks", first(None)),
        ("IFIA step (second order), one call", second(0)),
        ("IFIA step (second order), auto chunks", second(None)),
    ]:
        results[name] = per_call(fn, args.seconds)
        print(f"{name:40s} {results[name] / base:5.2f} x floor")
    for order in ("first order", "second order"):
        keys = [k for k in results if order in k]
        print(f"chunking speed-up, {order}: {results[keys[0]] / results[keys[1]]:.2f}x")


if __name__ == "__main__":
    main()
