"""The audit's journal: per-cell results appended as each cell finishes, so an interrupted
audit resumes where it stopped."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from attrib_audit.errors import AttribAuditError

JOURNAL = ".audit-journal.jsonl"


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

    def entry(self, cell: str, compute: Callable[[], dict]) -> dict:
        """The cell's entry: the journaled one when resuming, else ``compute()``'s, appended to
        the journal before it is returned. Nothing is kept in memory afterwards (each cell is
        read once), so an audit's memory does not grow with its journal."""
        done = self.done.pop(cell, None)
        if done is not None:
            return done
        entry = {"cell": cell, **compute()}
        if self.path is not None:
            with open(self.path, "a") as f:
                f.write(json.dumps(entry) + "\n")
                f.flush()
        return entry

    def remove(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def _check_same_run(path: Path, old: dict[str, Any], new: dict[str, Any]) -> None:
    start_over = "rerun without {resume} to start over"
    if set(old) != set(new):
        raise AttribAuditError(
            f"cannot resume: {path} was not written by this version of the audit; {start_over}",
            refs=("resume",),
        )
    if old["model_sha256"] != new["model_sha256"]:
        raise AttribAuditError(
            f"cannot resume: the checkpoint changed since the interrupted audit (sha256 "
            f"{str(old['model_sha256'])[:12]}... then, {new['model_sha256'][:12]}... now); "
            f"{start_over}",
            refs=("resume",),
        )
    if old["data"] != new["data"]:
        raise AttribAuditError(
            f"cannot resume: the data changed since the interrupted audit; {start_over}",
            refs=("resume",),
        )
    a, b = old["settings"], new["settings"]
    if a != b:
        a = _flat(a if isinstance(a, dict) else {})  # a damaged header: every setting differs
        b = _flat(b)
        keys = sorted(a.keys() | b.keys())
        changed = [f"{k} {a.get(k)!r} -> {b.get(k)!r}" for k in keys if a.get(k) != b.get(k)]
        raise AttribAuditError(
            f"cannot resume: the settings changed ({'; '.join(changed[:4])}); {start_over}",
            refs=("resume",),
        )


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as dotted names (``methods.ig.steps``), so a change names its leaf."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
