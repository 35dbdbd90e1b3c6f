"""Reports: JSON (the contract), HTML, JUnit XML, the gate, console tables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from attrib_audit.io import atomic_write_text
from attrib_audit.report.build import SCHEMA_VERSION, build_report
from attrib_audit.report.gate import evaluate_gate, load_report, parse_expr
from attrib_audit.report.junit import junit_xml
from attrib_audit.report.schema import SCHEMA

FILENAMES = {"json": "report.json", "html": "report.html", "junit": "junit.xml"}

__all__ = [
    "FILENAMES",
    "SCHEMA",
    "SCHEMA_VERSION",
    "build_report",
    "evaluate_gate",
    "junit_xml",
    "load_report",
    "parse_expr",
    "write_reports",
]


def write_reports(
    report: dict[str, Any],
    out: str | Path,
    formats: list[str],
    *,
    gallery: dict[str, list[dict]] | None = None,
) -> list[Path]:
    """Write the requested formats into ``out``, each atomically; returns their paths."""
    out = Path(out)
    written = []
    for fmt in formats:
        path = out / FILENAMES[fmt]
        if fmt == "json":
            atomic_write_text(path, json.dumps(report, indent=1, allow_nan=False) + "\n")
        elif fmt == "html":
            from attrib_audit.report.html import render_html

            atomic_write_text(path, render_html(report, gallery))
        else:
            atomic_write_text(path, junit_xml(report))
        written.append(path)
    return written
