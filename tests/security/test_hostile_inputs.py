"""A catalogue of hostile and broken inputs (docs/SECURITY.md): each gets the right exit code,
one line on stderr without a traceback, leaves no file behind, and runs no code it brought."""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from attrib_audit.cli import app
from attrib_audit.models import sample_model
from attrib_audit.models.zoo import digits_cnn

DIGITS = sample_model("digits-cnn", "pt")
CARD = DIGITS.with_suffix(".toml").read_text()


class Evil:
    """Unpickling this creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class Files:
    """Builds the hostile files of one case inside ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.marker = root / "MARKER"
        self.out = str(root / "out")

    def model(self, name="m.pt", card: str | None = CARD, state=None) -> str:
        path = self.root / name
        torch.save(state if state is not None else torch.load(DIGITS), path)
        if card is not None:
            path.with_suffix(".toml").write_text(card)
        return str(path)

    def card_arch(self, arch: str) -> str:
        lines = [ln for ln in CARD.splitlines() if not ln.startswith("arch")]
        lines.insert(1, f"arch = {json.dumps(arch)}")
        return "\n".join(lines) + "\n"

    def write(self, name: str, data: bytes | str) -> str:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return str(path)

    def npz(self, name="d.npz", **arrays) -> str:
        path = self.root / name
        np.savez(path, **arrays)
        return str(path)

    def report(self, name="r.json", **changes) -> str:
        report = {
            "schema_version": 1,
            "data": {"n_samples": 10, "n_correct": 9, "clean_accuracy": 0.9},
            "config": {"metrics": ["kendall"]},
            "summary": {"ig": {"kendall": 0.8}},
            "samples": [],
        }
        for key, value in changes.items():
            report[key] = value
        return self.write(name, json.dumps(report))

    def arch_file(self, body: str) -> str:
        return self.write("arch.py", "from torch import nn\n" + body)


def touch(f: Files) -> str:
    return f"touch {f.marker}"


# (name, expected exit code, args(f) -> list[str], text expected on stderr (code 2) or None)
CASES = [
    # 1. code that travels with a checkpoint never runs without --trust-checkpoint
    (
        "card-os-system-inspect",
        2,
        lambda f: ["inspect", f.model(card=f.card_arch(f"os:system(command='{touch(f)}')"))],
        "--trust-checkpoint",
    ),
    (
        "card-os-system-audit",
        2,
        lambda f: [
            "audit",
            f.model(card=f.card_arch(f"os:system(command='{touch(f)}')")),
            "--data",
            "digits",
            "--out",
            f.out,
        ],
        "--trust-checkpoint",
    ),
    (
        "card-os-system-attribute",
        2,
        lambda f: [
            "attribute",
            f.model(card=f.card_arch(f"os:system(command='{touch(f)}')")),
            "digits",
            "--out",
            f.out,
        ],
        "--trust-checkpoint",
    ),
    (
        "card-os-system-finetune",
        2,
        lambda f: [
            "finetune",
            f.model(card=f.card_arch(f"os:system(command='{touch(f)}')")),
            "--data",
            "digits",
            "--out",
            f.out,
        ],
        "--trust-checkpoint",
    ),
    (
        "card-subprocess",
        2,
        lambda f: [
            "inspect",
            f.model(card=f.card_arch(f"subprocess:run(args={touch(f).split()!r})")),
        ],
        "--trust-checkpoint",
    ),
    (
        "card-builtins-exec",
        2,
        lambda f: ["inspect", f.model(card=f.card_arch("builtins:exec(source='import os')"))],
        "--trust-checkpoint",
    ),
    (
        "card-file-next-to-checkpoint",
        2,
        lambda f: [
            f.write("evil.py", f"import os\nos.system('{touch(f)}')\ndef build():\n    pass\n")
            and "inspect",
            f.model(card=f.card_arch("evil.py:build")),
        ],
        "--trust-checkpoint",
    ),
    (
        "card-absolute-file",
        2,
        lambda f: [
            "inspect",
            f.model(
                card=f.card_arch(
                    f.write(
                        "x/evil.py", f"import os\nos.system('{touch(f)}')\ndef build():\n    pass\n"
                    )
                    + ":build"
                )
            ),
        ],
        "--trust-checkpoint",
    ),
    (
        "explicit-card-names-code",
        2,
        lambda f: [
            "inspect",
            f.model(card=None),
            "--card",
            f.write("other.toml", f.card_arch(f"os:system(command='{touch(f)}')")),
        ],
        "--trust-checkpoint",
    ),
    (
        "card-torchvision-helper",
        2,
        lambda f: ["inspect", f.model(card=f.card_arch("torchvision:get_model(name='resnet18')"))],
        "--trust-checkpoint",
    ),
    (
        "card-torchvision-download",
        2,
        lambda f: [
            "inspect",
            f.model(card=f.card_arch("torchvision:resnet18(weights='IMAGENET1K_V1')")),
        ],
        "nothing is downloaded",
    ),
    (
        "card-zoo-private",
        2,
        lambda f: ["inspect", f.model(card=f.card_arch("attrib_audit.models.zoo:nn"))],
        "--trust-checkpoint",
    ),
    (
        "config-sets-trust",
        2,
        lambda f: [
            "inspect",
            f.model(card=f.card_arch(f"os:system(command='{touch(f)}')")),
            "--config",
            f.write("c.toml", "trust-checkpoint = true\n"),
        ],
        "trust-checkpoint is refused in a config file",
    ),
    (
        "pickle-os-system",
        2,
        lambda f: [
            torch.save({"w": Evil(f.marker)}, f.root / "p.pt") or "inspect",
            str(f.root / "p.pt"),
            "--arch",
            "attrib_audit.models.zoo:digits_cnn",
        ],
        "--trust-checkpoint",
    ),
    (
        "pickle-os-system-audit",
        2,
        lambda f: [
            torch.save(Evil(f.marker), f.root / "p.pt") or "audit",
            str(f.root / "p.pt"),
            "--data",
            "digits",
            "--out",
            f.out,
        ],
        "--trust-checkpoint",
    ),
    (
        "plain-pickle-pkl",
        2,
        lambda f: [
            f.write("p.pkl", pickle.dumps(Evil(f.marker))) and "inspect",
            str(f.root / "p.pkl"),
            "--input-shape",
            "1,8,8",
            "--value-range",
            "0,1",
        ],
        "not written by torch.save",
    ),
    (
        "plain-pickle-pt",
        2,
        lambda f: [
            f.write("p.pt", pickle.dumps(Evil(f.marker))) and "inspect",
            str(f.root / "p.pt"),
            "--arch",
            "attrib_audit.models.zoo:digits_cnn",
            "--input-shape",
            "1,8,8",
            "--value-range",
            "0,1",
        ],
        "not written by torch.save",
    ),
    # 2. no verdict on evidence that is not there
    (
        "nan-logits",
        2,
        lambda f: [
            "audit",
            f.model(state={k: v * float("nan") for k, v in torch.load(DIGITS).items()}),
            "--data",
            "digits",
            "--require",
            "kendall>=0.1",
            "--out",
            f.out,
        ],
        "non-finite logits",
    ),
    (
        "inf-weights",
        2,
        lambda f: [
            "audit",
            f.model(state={k: v * float("inf") for k, v in torch.load(DIGITS).items()}),
            "--data",
            "digits",
            "--out",
            f.out,
        ],
        "non-finite logits",
    ),
    (
        "nan-images",
        2,
        lambda f: [
            "audit",
            str(DIGITS),
            "--data",
            f.npz(x=np.full((4, 1, 8, 8), np.nan, np.float32)),
            "--out",
            f.out,
        ],
        "NaN or infinite",
    ),
    (
        "inf-images",
        2,
        lambda f: [
            "audit",
            str(DIGITS),
            "--data",
            f.npz(x=np.full((4, 1, 8, 8), np.inf, np.float32)),
            "--out",
            f.out,
        ],
        "NaN or infinite",
    ),
    (
        "empty-data",
        2,
        lambda f: [
            "audit",
            str(DIGITS),
            "--data",
            f.npz(x=np.zeros((0, 1, 8, 8), np.float32)),
            "--out",
            f.out,
        ],
        "holds no images",
    ),
    (
        "steps-zero",
        2,
        lambda f: ["audit", str(DIGITS), "--steps", "0", "--out", f.out],
        "--steps must be >= 1",
    ),
    (
        "k-all-pixels",
        2,
        lambda f: ["audit", str(DIGITS), "--k", "64", "--out", f.out],
        "--k 64 must be between 1 and 63",
    ),
    (
        "k-past-pixels",
        2,
        lambda f: ["audit", str(DIGITS), "--k", "1000", "--out", f.out],
        "--k 1000",
    ),
    (
        "attack-k-zero",
        2,
        lambda f: [
            "audit",
            str(DIGITS),
            "--attack-param",
            "ifia-topk.k=0",
            "--out",
            f.out,
        ],
        "--attack-param ifia-topk.k must be >= 1",
    ),
    (
        "labels-outside-classes",
        2,
        lambda f: [
            "audit",
            str(DIGITS),
            "--data",
            f.npz(x=np.zeros((4, 1, 8, 8), np.float32), y=np.array([1, 2, 12, 3])),
            "--out",
            f.out,
        ],
        "outside the model's 10 classes",
    ),
    (
        "negative-labels",
        2,
        lambda f: [
            "audit",
            str(DIGITS),
            "--data",
            f.npz(x=np.zeros((2, 1, 8, 8), np.float32), y=np.array([-5, 1])),
            "--out",
            f.out,
        ],
        "labels are class indices",
    ),
    (
        "one-class-model",
        2,
        lambda f: [
            "audit",
            f.model(
                state=digits_cnn(1).state_dict(),
                card=CARD.replace("num_classes = 10", "num_classes = 1").replace(
                    'classes = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]',
                    'classes = ["only"]',
                ),
            ),
            "--data",
            f.npz(x=np.zeros((2, 1, 8, 8), np.float32)),
            "--out",
            f.out,
        ],
        "two or more classes",
    ),
    (
        "epsilon-zero",
        2,
        lambda f: ["audit", str(DIGITS), "--epsilon", "0", "--out", f.out],
        "--epsilon has only radius 0",
    ),
    (
        "epsilon-nan",
        2,
        lambda f: ["audit", str(DIGITS), "--epsilon", "nan", "--out", f.out],
        "not a finite number",
    ),
    (
        "epsilon-inf",
        2,
        lambda f: ["audit", str(DIGITS), "--epsilon", "1/0", "--out", f.out],
        "--epsilon",
    ),
    (
        "epsilon-negative",
        2,
        lambda f: ["audit", str(DIGITS), "--epsilon", "-0.1", "--out", f.out],
        "radii >= 0",
    ),
    (
        "gate-nothing-audited",
        1,
        lambda f: [
            "gate",
            f.report(data={"n_samples": 10, "n_correct": 0, "clean_accuracy": 0.0}),
            "--require",
            "kendall>=0.5",
        ],
        None,
    ),
    (
        "gate-null-summary",
        1,
        lambda f: [
            "gate",
            f.report(summary={"ig": {"kendall": None}}),
            "--require",
            "kendall>=0.5",
        ],
        None,
    ),
    (
        "gate-nan-summary",
        1,
        lambda f: [
            "gate",
            f.write(
                "r.json",
                json.dumps(
                    {
                        "schema_version": 1,
                        "data": {"n_correct": 3},
                        "summary": {"ig": {"kendall": float("nan")}},
                    }
                ),
            ),
            "--require",
            "kendall<=0.5",
        ],
        None,
    ),
    (
        "gate-missing-samples-values",
        1,
        lambda f: ["gate", f.report(samples=[{"kendall": None}]), "--require", "kendall>=0.5"],
        None,
    ),
    (
        "gate-baseline-disjoint",
        1,
        lambda f: [
            "gate",
            f.report(),
            "--baseline",
            f.report("b.json", summary={"sm": {"spearman": 0.9}}),
        ],
        None,
    ),
    (
        "gate-baseline-nan",
        1,
        lambda f: [
            "gate",
            f.report(),
            "--baseline",
            f.write(
                "b.json",
                json.dumps(
                    {"schema_version": 1, "data": {}, "summary": {"ig": {"kendall": float("nan")}}}
                ),
            ),
        ],
        None,
    ),
    # 3. what used to be tracebacks
    (
        "state-dict-wrong-shapes",
        2,
        lambda f: ["inspect", f.model(state=digits_cnn(5).state_dict())],
        "do not fit architecture",
    ),
    (
        "state-dict-not-tensors",
        2,
        lambda f: ["inspect", f.model(state={"a": 1})],
        "holds no state_dict",
    ),
    (
        "model-returns-tuple",
        2,
        lambda f: [
            "inspect",
            f.model(state={}, card=None),
            "--arch",
            f.arch_file(
                "class M(nn.Module):\n    def forward(self, x):\n        return (x.flatten(1), x)\n"
                "def build():\n    return M()\n"
            )
            + ":build",
            "--input-shape",
            "1,8,8",
            "--value-range",
            "0,1",
        ],
        "not a tensor",
    ),
    (
        "factory-raises",
        2,
        lambda f: [
            "inspect",
            f.model(card=None),
            "--arch",
            f.arch_file("def build():\n    raise RuntimeError('boom')\n") + ":build",
            "--input-shape",
            "1,8,8",
            "--value-range",
            "0,1",
        ],
        "failed to build: RuntimeError: boom",
    ),
    (
        "factory-returns-int",
        2,
        lambda f: [
            "inspect",
            f.model(card=None),
            "--arch",
            f.arch_file("def build():\n    return 3\n") + ":build",
            "--input-shape",
            "1,8,8",
            "--value-range",
            "0,1",
        ],
        "not a torch.nn.Module",
    ),
    (
        "string-array-data",
        2,
        lambda f: [
            "audit",
            str(DIGITS),
            "--data",
            f.npz(x=np.array([["a"] * 64] * 2)),
            "--out",
            f.out,
        ],
        "not numbers",
    ),
    (
        "object-data-pt",
        2,
        lambda f: [
            torch.save({"x": "abc"}, f.root / "d.pt") or "audit",
            str(DIGITS),
            "--data",
            str(f.root / "d.pt"),
            "--out",
            f.out,
        ],
        "not an array of numbers",
    ),
    (
        "out-is-a-file",
        2,
        lambda f: ["audit", str(DIGITS), "--samples", "2", "--out", f.write("file.txt", "x")],
        "is a file",
    ),
    (
        "out-under-a-file",
        2,
        lambda f: [
            "audit",
            str(DIGITS),
            "--samples",
            "2",
            "--out",
            f.write("file.txt", "x") + "/sub",
        ],
        "cannot write to --out",
    ),
    (
        "finetune-truncated-state",
        2,
        lambda f: [
            f.write("out/training-state.pt", b"PK\x03\x04junk") and "finetune",
            str(DIGITS),
            "--steps",
            "1",
            "--resume",
            "--no-audit",
            "--out",
            f.out,
        ],
        "damaged",
    ),
    (
        "finetune-param-type",
        2,
        lambda f: [
            "finetune",
            str(DIGITS),
            "--objective",
            "input-grad",
            "--param",
            "lam=abc",
            "--steps",
            "1",
            "--no-audit",
            "--out",
            f.out,
        ],
        "--param lam must be float",
    ),
    (
        "finetune-param-no-name",
        2,
        lambda f: [
            "finetune",
            str(DIGITS),
            "--param",
            "=3",
            "--steps",
            "1",
            "--no-audit",
            "--out",
            f.out,
        ],
        "use name=value",
    ),
    (
        "finetune-param-nan",
        2,
        lambda f: [
            "finetune",
            str(DIGITS),
            "--objective",
            "input-grad",
            "--param",
            "lam=float('nan')",
            "--steps",
            "1",
            "--no-audit",
            "--out",
            f.out,
        ],
        "--param lam must be float",
    ),
    (
        "gate-string-summary",
        2,
        lambda f: [
            "gate",
            f.report(summary={"ig": {"kendall": "high"}}),
            "--require",
            "kendall>=0.5",
        ],
        "not a number",
    ),
    (
        "gate-list-report",
        2,
        lambda f: ["gate", f.write("r.json", "[1, 2]"), "--require", "kendall>=0.5"],
        "not an attrib-audit report",
    ),
    (
        "path-with-markup",
        2,
        lambda f: ["inspect", str(f.root / "a[/]b[bold].pt")],
        "a[/]b[bold].pt does not exist",
    ),
    (
        "input-shape-two-dims",
        2,
        lambda f: ["inspect", str(DIGITS), "--input-shape", "1,28"],
        "C,H,W",
    ),
    (
        "value-range-reversed",
        2,
        lambda f: ["inspect", str(DIGITS), "--value-range", "1,0"],
        "lo,hi with lo < hi",
    ),
    (
        "mean-nan",
        2,
        lambda f: ["inspect", str(DIGITS), "--mean", "nan", "--std", "1"],
        "not a finite number",
    ),
    (
        "huge-input-shape-card",
        2,
        lambda f: ["inspect", f.model(card=CARD.replace("[1, 8, 8]", "[3, 100000, 100000]"))],
        "more than the",
    ),
    (
        "card-classes-not-list",
        2,
        lambda f: [
            "inspect",
            f.model(
                card=CARD.replace(
                    'classes = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]',
                    'classes = "0123456789"',
                )
            ),
        ],
        "classes must be a list",
    ),
    ("card-not-toml", 2, lambda f: ["inspect", f.model(card="arch = = 1\n")], "not valid TOML"),
    (
        "card-unknown-field",
        2,
        lambda f: ["inspect", f.model(card="exec = 'x'\n" + CARD)],
        "unknown field",
    ),
    (
        "steps-not-a-number",
        2,
        lambda f: ["audit", str(DIGITS), "--steps", "abc", "--out", f.out],
        "Invalid value for '--steps'",
    ),
    ("unknown-option", 2, lambda f: ["audit", "--bogus", "--out", f.out], "--bogus"),
    (
        "config-not-toml",
        2,
        lambda f: ["audit", "--config", f.write("c.toml", "= nope"), "--out", f.out],
        "not valid TOML",
    ),
    (
        "config-not-utf8",
        2,
        lambda f: ["audit", "--config", f.write("c.toml", b"\xff\xfe\x00"), "--out", f.out],
        "not UTF-8",
    ),
    (
        "config-unknown-option",
        2,
        lambda f: ["audit", "--config", f.write("c.toml", "stepz = 3\n"), "--out", f.out],
        "unknown option(s) stepz",
    ),
    (
        "config-is-a-folder",
        2,
        lambda f: ["audit", "--config", str(f.root), "--out", f.out],
        "cannot read config",
    ),
    ("empty-checkpoint", 2, lambda f: ["inspect", f.write("e.pt", b"")], "the file is empty"),
    (
        "random-checkpoint",
        2,
        lambda f: ["inspect", f.write("r.pt", bytes(range(256)) * 4)],
        "not written by torch.save",
    ),
    (
        "truncated-checkpoint",
        2,
        lambda f: ["inspect", f.write("t.pt", DIGITS.read_bytes()[:1000])],
        "damaged",
    ),
    (
        "corrupt-onnx",
        2,
        lambda f: ["inspect", f.write("m.onnx", b"\x08\x07garbage")],
        "not a valid ONNX model",
    ),
    (
        "corrupt-safetensors",
        2,
        lambda f: [
            "inspect",
            f.write("m.safetensors", b"\xff" * 64),
            "--arch",
            "attrib_audit.models.zoo:digits_cnn",
        ],
        "cannot read",
    ),
    (
        "corrupt-image",
        2,
        lambda f: [
            f.write("imgs/0/x.png", b"not a png") and "attribute",
            str(DIGITS),
            str(f.root / "imgs"),
            "--out",
            f.out,
        ],
        "cannot read image",
    ),
    (
        "audit-baseline-word",
        2,
        lambda f: ["audit", str(DIGITS), "--baseline", "zeros", "--out", f.out],
        "cannot read baseline report zeros",
    ),
    (
        "audit-baseline-not-json",
        2,
        lambda f: ["audit", str(DIGITS), "--baseline", f.write("b.json", "{nope"), "--out", f.out],
        "is not JSON",
    ),
    (
        "max-drop-without-baseline",
        2,
        lambda f: ["audit", str(DIGITS), "--max-drop", "0.1", "--out", f.out],
        "--max-drop needs a baseline report",
    ),
    (
        "bad-require",
        2,
        lambda f: ["audit", str(DIGITS), "--require", "kendall=>0.5", "--out", f.out],
        "--require expression 'kendall=>0.5' is malformed",
    ),
    (
        "no-cuda",
        2,
        lambda f: (
            ["inspect", str(DIGITS), "--device", "cuda"]
            if not torch.cuda.is_available()
            else ["inspect", str(DIGITS), "--device", "cuda:99"]
        ),
        "--device cuda",
    ),
    # 5. a resume never mixes runs; 7. one --out, one audit
    (
        "resume-other-checkpoint",
        2,
        lambda f: [
            f.write(
                "out/.audit-journal.jsonl",
                json.dumps({"model_sha256": "0" * 64, "data": "x", "settings": {}}) + "\n",
            )
            and "audit",
            str(DIGITS),
            "--resume",
            "--out",
            f.out,
        ],
        "the checkpoint changed",
    ),
    (
        "resume-old-journal",
        2,
        lambda f: [
            f.write("out/.audit-journal.jsonl", '{"fingerprint": "abc"}\n') and "audit",
            str(DIGITS),
            "--resume",
            "--out",
            f.out,
        ],
        "not written by this version",
    ),
    (
        "busy-out",
        2,
        lambda f: [
            f.write(
                "out/.attrib-audit.lock",
                json.dumps({"pid": os.getpid(), "host": os.uname().nodename, "since": 0}),
            )
            and "audit",
            str(DIGITS),
            "--samples",
            "2",
            "--out",
            f.out,
        ],
        "is in use by process",
    ),
    (
        "attribute-out-is-a-file",
        2,
        lambda f: ["attribute", str(DIGITS), "digits", "--samples", "2", "--out", f.write("x", "")],
        "is a file",
    ),
    (
        "unknown-format",
        2,
        lambda f: ["audit", str(DIGITS), "--format", "pdf"],
        "--format 'pdf' is unknown",
    ),
    (
        "gate-boolean-summary",
        2,
        lambda f: [
            "gate",
            f.report(summary={"ig": {"kendall": True}}),
            "--require",
            "kendall>=0.5",
        ],
        "not a number",
    ),
    (
        "card-huge-model",
        2,
        lambda f: [
            "inspect",
            f.model(card=CARD.replace("num_classes = 10", f"num_classes = {10**12}")),
        ],
        "do not fit architecture",
    ),
]


def _tree(root: Path) -> set[tuple[str, int]]:
    """Every path under ``root``, with the files' modification times."""
    return {
        (str(p.relative_to(root)), p.stat().st_mtime_ns if p.is_file() else 0)
        for p in root.rglob("*")
    }


@pytest.mark.parametrize("name,code,args,needle", CASES, ids=[c[0] for c in CASES])
def test_hostile_input(tmp_path, monkeypatch, name, code, args, needle):
    monkeypatch.chdir(tmp_path)
    f = Files(tmp_path)
    argv = args(f)
    before = _tree(tmp_path)
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    if code == 2:
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("error: ") and needle in lines[0], lines[0]
    else:  # the gate failed: its table is on stdout, nothing on stderr
        assert lines == [] and "FAIL" in result.stdout
    assert _tree(tmp_path) == before, "files were left behind"
    assert not f.marker.exists(), "code from the input ran"


def test_the_catalogue_covers_every_class():
    assert len(CASES) >= 60
    assert len({c[0] for c in CASES}) == len(CASES)


def test_trust_flag_lets_a_card_name_code(tmp_path):
    """The refusal is about consent: with --trust-checkpoint the card's file does build."""
    f = Files(tmp_path)
    f.write("arch.py", "from attrib_audit.models.zoo import digits_cnn\nbuild = digits_cnn\n")
    model = f.model(card=f.card_arch("arch.py:build"))
    assert CliRunner().invoke(app, ["inspect", model]).exit_code == 2
    result = CliRunner().invoke(app, ["inspect", model, "--trust-checkpoint"])
    assert result.exit_code == 0, result.stderr


def test_an_internal_error_is_exit_3(monkeypatch):
    import attrib_audit.models.inspection as inspection

    def bug(*args, **kwargs):
        raise ValueError("a bug, not bad input")

    monkeypatch.setattr(inspection, "inspect_model", bug)
    result = CliRunner().invoke(app, ["inspect", str(DIGITS)])
    assert result.exit_code == 3
    (line,) = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert "internal error (ValueError: a bug, not bad input)" in line and "--debug" in line


def test_onnx_external_data_outside_the_folder_is_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.ones(80, np.float32).tobytes())
    (tmp_path / "m").mkdir()
    w = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[64, 10])
    w.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "../secret.bin"), ("offset", "0"), ("length", "2560")):
        w.external_data.add(key=key, value=value)
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("MatMul", ["f", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        [w],
    )
    path = tmp_path / "m" / "m.onnx"
    onnx.save(helper.make_model(graph), str(path))
    result = CliRunner().invoke(app, ["inspect", str(path), "--value-range", "0,1"])
    assert result.exit_code == 2
    assert "outside the model's folder" in result.stderr


def test_a_stale_lock_is_taken_over(tmp_path):
    """A lock whose process is gone (a killed run) does not block the next audit."""
    from attrib_audit.io import LOCK, OutputDir

    (tmp_path / LOCK).write_text(json.dumps({"pid": 2**22 + 7, "host": os.uname().nodename}))
    with OutputDir(tmp_path):
        assert json.loads((tmp_path / LOCK).read_text())["pid"] == os.getpid()
    assert not (tmp_path / LOCK).exists()


def test_copy_of_zip_is_not_torchscript(tmp_path):
    """A zip that is neither torch's nor TorchScript's is read as a checkpoint and refused."""
    path = tmp_path / "z.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("hello.txt", "hi")
    result = CliRunner().invoke(app, ["inspect", str(path)])
    assert result.exit_code == 2 and "cannot read" in result.stderr


@pytest.mark.parametrize(
    "error, says",
    [
        (lambda: torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"), "GPU"),
        (lambda: RuntimeError("[enforce fail] DefaultCPUAllocator: can't allocate memory"), ""),
        (lambda: MemoryError(), ""),
    ],
)
def test_running_out_of_memory_is_one_line_naming_max_batch(monkeypatch, error, says):
    import attrib_audit.models.inspection as inspection

    def oom(*args, **kwargs):
        raise error()

    monkeypatch.setattr(inspection, "inspect_model", oom)
    result = CliRunner().invoke(app, ["inspect", str(DIGITS)])
    assert result.exit_code == 2
    (line,) = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert "out of" in line and says in line and "--max-batch" in line
