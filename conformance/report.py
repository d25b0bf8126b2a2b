"""Results: the terminal summary, the ``--conformance-json`` file and the conformance matrix."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Iterable

import jsonschema

SCHEMA_PATH = Path(__file__).resolve().parent / "results.schema.json"
FORMAT = "adam-conformance-results/1"
VERDICTS = ("pass", "fail", "xfail", "stale", "unsupported", "error")
LEVELS = ("core", "api", "tf2-detail")


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


def header_lines(meta: dict) -> list[str]:
    """The report header: candidate, device, what was measured about the candidate, the vector set."""
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    vs = meta["vector_set"]
    ftz = ", ".join(d for d, on in meta["environment"]["flush_to_zero"].items() if on) or "no dtype"
    lines = [
        f"candidate {meta['candidate']} (adapter {meta['adapter']}{', raw' if meta['raw'] else ''}; {versions})",
        f"device {meta['device']}; execution {meta.get('execution', 'eager')}"
        + (f" ({meta['execution_text']})" if meta.get("execution_text") else "")
        + f"; mode {meta['mode']}; timeout {meta['timeout_s']:g} s"
        + ("; isolated (vector items in a child process)" if meta.get("isolated") else ""),
        f"flush-to-zero in {ftz}",
        f"vector set spec {vs['spec_version']}, {len(vs['vectors'])} files, sha256 {vs['sha256']}",
        f"levels {', '.join(meta['levels'])}; expectations {meta['expectations'] or 'none'}",
    ]
    lines += [f"translation: {t}" for t in meta["translations"]]
    aliases = meta["environment"].get("page_aliases")
    if aliases:  # ADAM-API-ALIAS-1: which class the page's names give in the installed TensorFlow
        targets: dict[str, list[str]] = {}
        for name, target in aliases.items():
            targets.setdefault(target, []).append(name)
        lines += [f"page names {', '.join(names)} -> {target}" for target, names in targets.items()]
    lines += [f"not implemented: {feature} ({why})" for feature, why in meta["capabilities"]["absent"].items()]
    if "state loading" in meta["capabilities"]["absent"]:
        lines.append("single-step mode: unsupported for this candidate (no state loading); trajectory mode decides")
    if meta["capabilities"]["not_exposed"]:
        lines.append(f"not exposed: {', '.join(meta['capabilities']['not_exposed'])} (judged on what it does expose)")
    return lines


def verdict_line(meta: dict, results: list[dict]) -> str:
    """What was judged, in one line: per level, conforms or not; what is unsupported and why; what is not exposed."""
    _, by_level = counts(results)
    parts = []
    for level in meta["levels"]:
        c = by_level.get(level, Counter())
        judged = sum(c[v] for v in ("pass", "fail", "xfail", "stale", "error"))
        bad = c["fail"] + c["stale"] + c["error"]
        if bad:
            parts.append(f"does not conform to {level}: {bad} of {judged} items fail")
        elif judged:
            known = f" ({c['xfail']} known divergences)" if c["xfail"] else ""
            parts.append(f"conforms to {level} on {c['pass'] + c['xfail']} items{known}")
        elif c["unsupported"]:
            parts.append(f"{level}: nothing ran")
    reasons = Counter(r.get("unsupported") or r.get("message") or "?" for r in results if r["verdict"] == "unsupported")
    if reasons:
        parts.append("unsupported: " + ", ".join(f"{why} ({n} item{'s' if n > 1 else ''})" for why, n in reasons.most_common()))
    if "state loading" in meta["capabilities"]["absent"]:
        parts.append("single-step mode unsupported (no state loading)")
    hidden = sorted({k for r in results for k in (r.get("observed") or {}).get("not_exposed", [])})
    if hidden:
        parts.append(f"not exposed: {', '.join(hidden)}")
    return "; ".join(parts) if parts else "nothing was judged"


def summary_lines(results: list[dict]) -> list[str]:
    """Per family (and per level) counts, then one line per unexpected failure."""
    by_family, by_level = counts(results)
    width = max([len(f) for f in by_family] + [16])
    head = f"{'family':<{width}} " + " ".join(f"{v:>11}" for v in VERDICTS)
    lines = [head, "-" * len(head)]
    for family in sorted(by_family):
        lines.append(f"{family:<{width}} " + " ".join(f"{by_family[family][v]:>11}" for v in VERDICTS))
    lines.append("-" * len(head))
    for level in LEVELS:
        if level in by_level:
            lines.append(f"{'level ' + level:<{width}} " + " ".join(f"{by_level[level][v]:>11}" for v in VERDICTS))
    ratios = [r["max_ratio"] for r in results if isinstance(r.get("max_ratio"), float) and r["verdict"] == "pass"]
    if ratios:
        lines.append(f"largest share of the error bound used by a passing vector: {max(ratios):.3g}")
    for r in results:
        if r["verdict"] in ("fail", "stale", "error"):
            step = f" from step {r['first_failing_step']}" if r.get("first_failing_step") else ""
            lines.append(f"{r['verdict'].upper()}: {r['vector']} [{r.get('dtype') or '-'}]{step}: {r.get('message') or ''}")
            if r.get("diagnosis"):
                lines.append(f"    diagnosis: {diagnosis_summary(r['diagnosis'])}")
    return lines


def diagnosis_summary(d: dict, ulps: bool = True) -> str:
    """A result's diagnosis in a few words (conformance/diagnose.py says it in full; older files have no kind)."""
    kind, what = d.get("kind"), f"{d['variant']} ({d['clause']})"
    close = f", {d['ulps']:.3g} ulp" if ulps and isinstance(d.get("ulps"), float) else ""
    where = (d.get("localisation") or {}).get("clause")
    if kind is None:
        return f"{'matches' if d['matches'] else 'closest known variant:'} {what}{close}"
    if kind in ("variant", "pair"):
        return f"matches {what}{close}"
    if kind == "fit":
        return f"behaves as {d['variant']}{close}"
    if kind == "tie":
        return f"matches {' and '.join([d['variant'], *d.get('alternatives', [])])} equally"
    if kind == "partial":
        return f"no known variant matches; {what} explains part of it"
    return "no known variant explains it" + (f"; departs at {where}" if where else "")


def terminal_lines(meta: dict, results: list[dict], avoided: dict[str, str], stale: list[tuple[str, str]],
                   executed: int) -> list[tuple[str, bool]]:
    """The terminal summary, as (line, shown in red) pairs."""
    lines = [f"candidate {meta['candidate']} via the {meta['adapter']} adapter{' (raw)' if meta['raw'] else ''}"]
    lines += summary_lines(results)
    if meta["deselected_levels"]:
        lines.append("not selected (--level): " + ", ".join(f"{level} ({n} items)"
                                                             for level, n in sorted(meta["deselected_levels"].items())))
    props = [r for r in results if r["family"] == "property" and "examples" in r]
    if props:
        lines += [f"property tier: not drawn, known divergence: {feature} ({reason})" for feature, reason in avoided.items()]
    for r in props:  # from the result records, so that they also arrive from xdist workers
        lines.append(f"property {r['vector'].removeprefix('property/test_').replace('_', '-')}: {r['examples']} examples, "
                     f"largest share of the error bound used {r.get('worst_ratio', 0.0):.3g}"
                     + (f" ({r['worst_example']})" if r.get("worst_example") else ""))
        lines += [f"  {note}" for note in r.get("notes", [])]
    lines += [f"STALE EXPECTATION: {entry} ({clause}) matched no item in {meta['expectations']}" for entry, clause in stale]
    timing = meta["timing"]
    share = 100.0 * (1 - timing["candidate_s"] / timing["total_s"]) if timing["total_s"] else 0.0
    lines.append(f"time: {timing['total_s']:.2f} s from collection to the last item ({timing['collection_s']:.2f} s "
                 f"loading and verifying vectors), {timing['candidate_s']:.2f} s of it inside the candidate "
                 f"(kit's share {share:.0f}%)")
    out = [(line, False) for line in lines]
    out.append((f"verdict: {verdict_line(meta, results)}", False))
    if executed == 0:
        out.append(("ERROR: zero vectors were executed against the candidate; this is never a pass", True))
    return out


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
    return label + (f" {doc['execution']}" if doc.get("execution", "eager") != "eager" else "")


def matrix(paths: Iterable[Path]) -> str:
    """Two markdown tables, one row per results file: verdicts by spec level, then by vector family."""
    docs = [json.loads(Path(p).read_text(encoding="utf-8")) for p in paths]
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
    return "\n".join(tables) + ("\nUnsupported because:\n\n" + "\n".join(notes) + "\n" if notes else "")


def unsupported_notes(docs: list[dict]) -> list[str]:
    """One markdown bullet per candidate with unsupported items or modes: what and why, with counts."""
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
    docs = [json.loads(Path(p).read_text(encoding="utf-8")) for p in paths]
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
        d = json.loads(Path(p).read_text(encoding="utf-8"))
        found: Counter = Counter()
        for r in d["results"]:
            if r.get("diagnosis"):
                found[diagnosis_summary(r["diagnosis"], ulps=False)] += 1
        text = "; ".join(f"{what}: {n}" for what, n in sorted(found.items(), key=lambda kv: (-kv[1], kv[0])))
        rows.append(f"| `{_label(d)}` | {text or 'nothing failed'} |")
    return "\n".join(rows) + "\n"
