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
    "render_reports",
    "write_rendered",
    "write_reports",
]


def render_reports(
    report: dict[str, Any],
    formats: list[str],
    *,
    gallery: dict[str, list[dict]] | None = None,
) -> dict[str, str]:
    """Each requested format's text, by file name. Everything is rendered before anything is
    written, so a failure leaves no report without its siblings."""
    texts = {}
    for fmt in formats:
        if fmt == "json":
            texts[FILENAMES[fmt]] = json.dumps(report, indent=1, allow_nan=False) + "\n"
        elif fmt == "html":
            from attrib_audit.report.html import render_html

            texts[FILENAMES[fmt]] = render_html(report, gallery)
        else:
            texts[FILENAMES[fmt]] = junit_xml(report)
    return texts


def write_rendered(out: str | Path, texts: dict[str, str]) -> list[Path]:
    """Write rendered reports into ``out``, each atomically; returns their paths."""
    return [atomic_write_text(Path(out) / name, text) for name, text in texts.items()]


def write_reports(
    report: dict[str, Any],
    out: str | Path,
    formats: list[str],
    *,
    gallery: dict[str, list[dict]] | None = None,
) -> list[Path]:
    """Render the requested formats, then write them into ``out``; returns their paths."""
    return write_rendered(out, render_reports(report, formats, gallery=gallery))
