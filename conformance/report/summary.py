"""A results document in brief: what the README's tables and a verdict check need, item by item.

``summarize`` turns a full results document (``--conformance-json``, ``conformance.report.document``) into a
summary: the header fields that label a row and explain its unsupported items, and per item its nodeid,
verdict, family, level, dtype, the worst share of the bound (``max_ratio``), why it is unsupported, what it
is a known divergence for, and its diagnosis in brief.  ``docs/results/*.summary.json`` are such summaries.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conformance.report.terminal import diagnosis_summary

FORMAT = "adam-conformance-summary/1"

#: Header fields kept as they are (the row's label, its versions and capabilities, the run's settings).
HEADER = ("candidate", "adapter", "raw", "execution", "device", "versions", "capabilities", "levels",
          "deselected_levels", "expectations", "mode", "summary", "timing", "translations", "declared_profile",
          "profile", "world_size", "split", "checkpoint")
#: Item fields kept as they are, where present.
ITEM = ("nodeid", "verdict", "family", "level", "dtype", "max_ratio", "first_failing_step", "examples", "twin",
        "replicas")


def _diagnosis(d: dict) -> dict:
    """A diagnosis in brief: enough for ``diagnosis_summary``, and its sentence."""
    brief = {k: d[k] for k in ("kind", "variant", "clause", "matches", "alternatives", "ulps", "mode", "explanations")
             if k in d}
    where = d.get("localisation") or {}
    if where:
        brief["localisation"] = {k: where[k] for k in ("clause", "text") if k in where}
    brief["text"] = diagnosis_summary(d)
    return brief


def summarize_result(r: dict) -> dict:
    """One item's record in brief."""
    out: dict[str, Any] = {k: r[k] for k in ITEM if k in r}
    if r["verdict"] == "unsupported":
        out["unsupported"] = r.get("unsupported") or r.get("message") or "?"
    elif r["verdict"] in ("fail", "stale", "error") and r.get("message"):
        out["message"] = r["message"]
    if r.get("expected_divergence"):
        out["expected_divergence"] = r["expected_divergence"]
    if r.get("diagnosis"):
        out["diagnosis"] = _diagnosis(r["diagnosis"])
    return out


def summarize(doc: dict) -> dict:
    """The summary of a full results document (a summary is returned as it is)."""
    if doc.get("format") == FORMAT:
        return doc
    head = {k: doc[k] for k in HEADER if k in doc}
    if "vector_set" in doc:
        head["vector_set"] = {k: doc["vector_set"][k] for k in ("sha256", "spec_version") if k in doc["vector_set"]}
    return {"format": FORMAT, "source_format": doc.get("format"), **head,
            "results": [summarize_result(r) for r in doc["results"]]}


def load(path: str | Path) -> dict:
    """A results file, full or summary, as a summary."""
    return summarize(json.loads(Path(path).read_text(encoding="utf-8")))


def dumps(summary: dict) -> str:
    """The summary as JSON text: the header indented, one line per item (small diffs from one run to the next)."""
    head = {k: v for k, v in summary.items() if k != "results"}
    text = json.dumps(head, indent=1, sort_keys=True)[:-2]  # without the closing "\n}"
    items = ",\n  ".join(json.dumps(r, sort_keys=True) for r in summary["results"])
    return text + ',\n "results": [\n  ' + items + "\n ]\n}\n"


def write(path: str | Path, doc: dict) -> Path:
    """Write the summary of ``doc`` (full or summary) to ``path``, creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps(summarize(doc)), encoding="utf-8")
    return path
