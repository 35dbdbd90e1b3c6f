"""The JSON Schema of the report (schema_version 1); ``schema.json`` is generated from it."""

from __future__ import annotations

NUM = {"type": ["number", "null"]}
SUMMARY = {
    "type": "object",
    "required": ["mean", "median", "ci95"],
    "properties": {
        "mean": NUM,
        "median": NUM,
        "ci95": {"type": "array", "items": NUM, "minItems": 2, "maxItems": 2},
    },
}

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "attrib-audit report",
    "type": "object",
    "required": [
        "schema_version",
        "tool",
        "model",
        "data",
        "config",
        "results",
        "summary",
        "evidence",
        "gate",
        "samples",
    ],
    "properties": {
        "schema_version": {"const": 1},
        "tool": {
            "type": "object",
            "required": ["name", "version"],
            "properties": {"name": {"const": "attrib-audit"}, "version": {"type": "string"}},
        },
        "model": {
            "type": "object",
            "required": ["path", "format", "sha256", "card", "surrogate"],
            "properties": {
                "path": {"type": "string"},
                "format": {"type": "string"},
                "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                "card": {"type": "object"},
                "surrogate": {
                    "type": "object",
                    "required": ["beta", "prediction_agreement", "map_cosine"],
                    "properties": {
                        "beta": {"type": "number"},
                        "prediction_agreement": NUM,
                        "map_cosine": NUM,
                        "unreplaced": {"type": "array", "items": {"type": "string"}},
                        "piecewise": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "onnx": {
                    "type": "object",
                    "required": ["conversion_max_abs_error", "rechecked", "disagreements"],
                    "properties": {"notes": {"type": "array", "items": {"type": "string"}}},
                },
            },
        },
        "data": {
            "type": "object",
            "required": ["source", "n_samples", "n_correct", "clean_accuracy"],
            "properties": {
                "source": {"type": "string"},
                "n_samples": {"type": "integer", "minimum": 0},
                "n_correct": {"type": "integer", "minimum": 0},
                "n_nonfinite_logits": {"type": "integer", "minimum": 0},
                "clean_accuracy": NUM,
            },
        },
        "config": {"type": "object", "required": ["seed"]},
        "execution": {  # how it ran: torchrun processes and the device of each
            "type": "object",
            "required": ["processes", "devices"],
            "properties": {
                "processes": {"type": "integer", "minimum": 1},
                "devices": {"type": "array", "items": {"type": "string"}},
            },
        },
        "results": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["method", "attack", "epsilon", "n", "prediction_kept", "metrics"],
                "properties": {
                    "method": {"type": "string"},
                    "attack": {"type": "string"},
                    "epsilon": {"type": "number", "minimum": 0},
                    "transfer_from": {"type": ["string", "null"]},
                    "n": {"type": "integer", "minimum": 0},
                    "prediction_kept": {"type": "number", "minimum": 0, "maximum": 1},
                    "flat_maps": {"type": "integer", "minimum": 0},  # left out of the metrics
                    "metrics": {"type": "object", "additionalProperties": SUMMARY},
                },
            },
        },
        "auc": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "additionalProperties": {"type": "object", "additionalProperties": NUM},
            },
        },
        "adversarial_accuracy": {"type": "object", "additionalProperties": NUM},
        "certification": {  # audit --certify / attrib-audit certify
            "type": "object",
            "required": ["settings", "k", "radius", "reachable", "curve_radii", "norm", "methods"],
            "properties": {
                "settings": {"type": "object"},
                "k": {"type": "integer", "minimum": 1},
                "radius": {"type": "number", "minimum": 0},
                "reachable": NUM,
                "curve_radii": {"type": "array", "items": NUM},
                "norm": {"const": "l2"},
                "methods": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "required": ["n", "certified_topk", "curve", "abstained", "smoothed_k"],
                        "properties": {
                            "n": {"type": "integer", "minimum": 0},
                            "certified_topk": SUMMARY,
                            "curve": {"type": "array", "items": NUM},
                            "abstained": NUM,
                            "smoothed_k": NUM,
                        },
                    },
                },
            },
        },
        "summary": {
            "type": "object",
            "additionalProperties": {"type": "object", "additionalProperties": NUM},
        },
        "evidence": {
            "type": "object",
            "required": ["conclusive", "problems"],
            "properties": {
                "conclusive": {"type": "boolean"},
                "problems": {"type": "array", "items": {"type": "string"}},
            },
        },
        "gate": {
            "type": "object",
            "required": ["passed", "checks"],
            "properties": {
                "passed": {"type": "boolean"},
                "checks": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["expr", "value", "passed"],
                        "properties": {
                            "expr": {"type": "string"},
                            "value": NUM,
                            "passed": {"type": "boolean"},
                            "detail": {"type": "string"},
                        },
                    },
                },
            },
        },
        "samples": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["index", "label", "method", "attack", "epsilon"],
                "properties": {
                    "index": {"type": "integer"},
                    "label": {"type": "integer", "minimum": -1},  # -1: the data had none
                    "method": {"type": "string"},
                    "attack": {"type": "string"},
                    "epsilon": {"type": "number"},
                    "flat_map": {"type": "boolean"},  # one value everywhere: metrics undefined
                },
            },
        },
    },
}
