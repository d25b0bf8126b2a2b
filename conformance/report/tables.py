"""The README's tables, built from results files, full or summary (``conformance.report.summary``): the
conformance matrix, tightness, diagnoses."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterable

from conformance.clauses import DEFAULT_LEVELS, LEVELS
from conformance.report.summary import load
from conformance.report.terminal import diagnosis_summary


def _cell(counts: Counter) -> str:
    ran = counts["pass"] + counts["fail"] + counts["xfail"] + counts["stale"] + counts["error"]
    if not ran:
        return "unsupported" if counts["unsupported"] else ""
    text = f"{counts['pass']}/{ran}"
    extras = [f"{counts[k]} {label}" for k, label in (("xfail", "known"), ("fail", "FAIL"), ("stale", "stale"),
                                                     ("error", "error"), ("unsupported", "unsupp.")) if counts[k]]
    return text + (f" ({', '.join(extras)})" if extras else "")


def _label(doc: dict) -> str:
    label = doc["candidate"] + (" (raw)" if doc.get("raw") else "")
    backend = doc.get("versions", {}).get("backend")
    label += f" [{backend}]" if backend and backend != "tensorflow" else ""
    label += f" {doc['execution']}" if doc.get("execution", "eager") != "eager" else ""
    if doc.get("world_size"):  # a distributed execution mode: its ranks and how each step's gradient was divided
        label += f" ({doc['world_size']} ranks, {doc.get('split', 'even')} split)"
    label += f" resumed ({doc['checkpoint']['format']})" if doc.get("checkpoint") else ""
    if tuple(doc.get("levels") or DEFAULT_LEVELS) != DEFAULT_LEVELS:  # a row of chosen levels, such as the opt-in later
        label += f" --level={','.join(doc['levels'])}"
    return label + (" (profile)" if doc.get("declared_profile") else "")


def matrix(paths: Iterable[Path]) -> str:
    """Two markdown tables, one row per results file: verdicts by spec level, then by vector family."""
    docs = [load(p) for p in paths]
    families = sorted({r["family"] for d in docs for r in d["results"]})
    tables = []
    for key, columns in (("level", list(LEVELS)), ("family", families)):
        head = ["candidate", *columns]
        rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for d in docs:
            counts: dict[str, Counter] = defaultdict(Counter)
            for r in d["results"]:
                counts[r.get(key) or "-"][r["verdict"]] += 1
            rows.append("| " + " | ".join([f"`{_label(d)}`"] + [_cell(counts[c]) for c in columns]) + " |")
        tables.append("\n".join(rows) + "\n")
    notes = unsupported_notes(docs)
    profiles = profile_notes(docs)
    return ("\n".join(tables) + ("\nJudged with a profile (the deviations it declares, each verified on every item):\n\n"
                                 + "\n".join(profiles) + "\n" if profiles else "")
            + ("\nUnsupported because:\n\n" + "\n".join(notes) + "\n" if notes else ""))


def profile_notes(docs: list[dict]) -> list[str]:
    """One markdown bullet per distinct declared profile: the rows judged with it, and its deviations."""
    rows: dict[tuple[str, ...], list[str]] = {}
    for d in docs:
        if d.get("declared_profile"):
            rows.setdefault(tuple(d["declared_profile"]), []).append(_label(d))
    return [f"- {', '.join(f'`{label}`' for label in labels)}: {' + '.join(profile)}" for profile, labels in rows.items()]


def unsupported_notes(docs: list[dict]) -> list[str]:
    """One markdown bullet per candidate with unsupported items or modes: what and why, with counts (full or summary documents)."""
    notes = []
    for d in docs:
        reasons = Counter(r.get("unsupported") or r.get("message") or "?" for r in d["results"] if r["verdict"] == "unsupported")
        parts = [f"{why} ({n} item{'s' if n > 1 else ''})" for why, n in reasons.most_common()]
        if "state loading" in d.get("capabilities", {}).get("absent", {}):
            parts.append("single-step mode (no state loading)")
        if d.get("capabilities", {}).get("not_exposed"):
            parts.append("not exposed: " + ", ".join(d["capabilities"]["not_exposed"]))
        if parts:
            notes.append(f"- `{_label(d)}`: " + "; ".join(parts))
    return notes


def tightness(paths: Iterable[Path]) -> str:
    """A markdown table: per results file and dtype, the largest share of the error bound a passing vector used."""
    docs = [load(p) for p in paths]
    dtypes = ["float16", "bfloat16", "float32", "float64"]
    rows = ["| candidate | " + " | ".join(dtypes) + " |", "|" + "---|" * (len(dtypes) + 1)]
    for d in docs:
        best: dict[str, float] = {}
        for r in d["results"]:
            if r["verdict"] == "pass" and isinstance(r.get("max_ratio"), (int, float)) and r.get("dtype"):
                best[r["dtype"]] = max(best.get(r["dtype"], 0.0), float(r["max_ratio"]))
        rows.append(f"| `{_label(d)}` | " + " | ".join(f"{best[t]:.3f}" if t in best else "" for t in dtypes) + " |")
    return "\n".join(rows) + "\n"


def diagnoses(paths: Iterable[Path]) -> str:
    """A markdown table: per results file, which known variants its failing items match (or come closest to)."""
    rows = ["| candidate | diagnosis of its failing and known-divergent items |", "|---|---|"]
    for p in paths:
        d = load(p)
        found: Counter = Counter()
        for r in d["results"]:
            if r.get("diagnosis"):
                found[diagnosis_summary(r["diagnosis"], ulps=False)] += 1
        text = "; ".join(f"{what}: {n}" for what, n in sorted(found.items(), key=lambda kv: (-kv[1], kv[0])))
        rows.append(f"| `{_label(d)}` | {text or 'nothing failed'} |")
    return "\n".join(rows) + "\n"
