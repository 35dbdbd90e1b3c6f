"""JUnit XML: one test case per gate check, so CI systems show the gate natively."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any


def junit_xml(report: dict[str, Any]) -> str:
    checks = report.get("gate", {}).get("checks", [])
    failures = sum(not c["passed"] for c in checks)
    suite = ET.Element(
        "testsuite",
        name="attrib-audit gate",
        tests=str(len(checks)),
        failures=str(failures),
        errors="0",
    )
    model = report.get("model", {}).get("path", "model")
    for c in checks:
        case = ET.SubElement(suite, "testcase", classname=f"attrib-audit.{model}", name=c["expr"])
        value = "n/a" if c["value"] is None else f"{c['value']:.6g}"
        if not c["passed"]:
            failure = ET.SubElement(case, "failure", message=f"{c['expr']} failed: value {value}")
            failure.text = f"{c['expr']}: measured {value}" + (
                f" ({c['detail']})" if c.get("detail") else ""
            )
        else:
            ET.SubElement(case, "system-out").text = f"measured {value}"
    root = ET.Element("testsuites", tests=str(len(checks)), failures=str(failures))
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")
