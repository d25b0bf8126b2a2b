"""The results document (``--conformance-json``): verdicts, the document and its schema, counts."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import jsonschema

SCHEMA_PATH = Path(__file__).resolve().parent / "results.schema.json"
FORMAT = "adam-conformance-results/1"
VERDICTS = ("pass", "fail", "xfail", "stale", "unsupported", "error")


def verdict_of(report: Any) -> str:
    """Map a pytest report to a verdict: pass, fail, xfail (known divergence), stale, unsupported, error."""
    if hasattr(report, "wasxfail"):
        return "xfail" if report.skipped else "stale"
    if report.passed:
        return "pass"
    if report.skipped:
        return "unsupported"
    if "[XPASS(strict)]" in str(report.longrepr):
        return "stale"
    return "fail"


def document(meta: dict, results: list[dict]) -> dict:
    """The JSON results document, validated against ``results.schema.json``."""
    doc = {"format": FORMAT, **meta, "summary": dict(Counter(r["verdict"] for r in results)), "results": results}
    jsonschema.validate(doc, json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))
    return doc


def write_json(path: str | Path, doc: dict) -> None:
    """Write a results document (creating parent folders)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, sort_keys=True, default=str) + "\n", encoding="utf-8")


def counts(results: list[dict]) -> tuple[dict[str, Counter], dict[str, Counter]]:
    """Verdict counts per family and per level (``-`` for a record without a level)."""
    by_family: dict[str, Counter] = defaultdict(Counter)
    by_level: dict[str, Counter] = defaultdict(Counter)
    for r in results:
        by_family[r["family"]][r["verdict"]] += 1
        by_level[r.get("level") or "-"][r["verdict"]] += 1
    return by_family, by_level
