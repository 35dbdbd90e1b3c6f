"""Peak memory of one second-order IFIA step on a 224x224 model, against the batch size.

Each measurement runs in a fresh process (its peak resident memory is the number), so the
figures do not mix. The step: IFIA top-k on IG-16 through the softplus surrogate, one
iteration, on random weights and uniform images (memory depends on shapes, not values).
Before the step's own cost, the process holds torch, the model, its surrogate and the batch;
``baseline`` is the same process stopped before the step.

    python benchmarks/memory.py [--arch resnet50] [--batch-sizes 1,4,16,64] [--steps 16]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _child(arch: str, batch: int, steps: int, attack: bool) -> None:
    import torch
    import torchvision

    from attrib_audit.attacks.feature_importance import ifia
    from attrib_audit.attributions.integrated import integrated_gradients
    from attrib_audit.models.surrogate import smooth_surrogate

    torch.manual_seed(0)
    model = torchvision.models.get_model(arch, weights=None).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    surrogate = smooth_surrogate(model, 10.0)
    x = torch.rand(batch, 3, 224, 224)
    target = torch.zeros(batch, dtype=torch.long)
    t0 = time.perf_counter()
    if attack:

        def ig(m, inp, tgt, create_graph=False):
            return integrated_gradients(m, inp, tgt, steps=steps, create_graph=create_graph)

        ifia(model, surrogate, x, target, ig, epsilon=8 / 255, steps=1, step_size=2 / 255, k=1000)
    seconds = time.perf_counter() - t0
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_gib": peak_kib / 2**20, "seconds": seconds}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="resnet50")
    ap.add_argument("--batch-sizes", default="1,4,16")
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        batch, steps, attack = args.child
        return _child(args.arch, int(batch), int(steps), attack == "1")
    print(f"{args.arch} at 224x224, one IFIA top-k step on IG-{args.steps} (peak resident memory)")
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    for batch, attack in [(sizes[-1], False)] + [(b, True) for b in sizes]:
        cmd = [sys.executable, __file__, "--arch", args.arch]
        cmd += ["--child", str(batch), str(args.steps), "1" if attack else "0"]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        what = f"batch {batch:>3}" if attack else f"baseline (batch {batch}, no step)"
        print(f"{what:<28} peak {r['peak_gib']:6.2f} GiB  step {r['seconds']:7.1f} s", flush=True)


if __name__ == "__main__":
    main()
