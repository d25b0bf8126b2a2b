"""What the terminal shows: the header, the verdict line, the summary by family and level, the diagnosis in brief."""

from __future__ import annotations

from collections import Counter

from conformance.clauses import LEVELS
from conformance.diagnosis.profile import item_line, sentence
from conformance.report.document import VERDICTS, counts


def checkpoint_line(checkpoint: dict) -> str:
    """The header's line for ``--checkpoint``: the format, where the run is saved and resumed, what judges it."""
    kernel = checkpoint.get("resumed_execution")
    return (f"checkpoint {checkpoint['format']} ({checkpoint['text']}): saved after {checkpoint['saved_after']}"
            + (f", the resumed candidate built with execution {kernel}" if kernel else "")
            + "; judged in trajectory mode against the oracle"
            + ("; the uninterrupted run must be reproduced bit for bit" if checkpoint.get("twin_binding", True)
               else "; the uninterrupted run is reported beside the verdict (another kernel rounds differently)"))


def header_lines(meta: dict) -> list[str]:
    """The report header: candidate, device, what was measured about the candidate, the vector set."""
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    vs = meta["vector_set"]
    ftz = ", ".join(d for d, on in meta["environment"]["flush_to_zero"].items() if on) or "no dtype"
    lines = [
        f"candidate {meta['candidate']} (adapter {meta['adapter']}{', raw' if meta['raw'] else ''}; {versions})",
        f"device {meta['device']}; execution {meta.get('execution', 'eager')}"
        + (f" ({meta['execution_text']})" if meta.get("execution_text") else "")
        + (f"; {meta['world_size']} ranks, {meta.get('split', 'even')} split" if meta.get("world_size") else "")
        + (f" on {', '.join(meta['rank_hosts'])}" + (f" (started by {meta['rank_launcher']!r})" if meta.get("rank_launcher")
                                                       else "") if meta.get("rank_hosts") else "")
        + f"; mode {meta['mode']}; timeout {meta['timeout_s']:g} s"
        + ("; isolated (every call into the candidate in a child process)" if meta.get("isolated") else ""),
        f"flush-to-zero in {ftz}",
        *([checkpoint_line(meta["checkpoint"])] if meta.get("checkpoint") else []),
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
        declared = meta.get("declared_profile") or []
        with_profile = f" with profile {' + '.join(declared)}" if declared else ""
        if bad:
            parts.append(f"does not conform to {level}{with_profile}: {bad} of {judged} items fail")
        elif judged:
            known = f" ({c['xfail']} known divergences)" if c["xfail"] else ""
            parts.append(f"conforms to {level}{with_profile} on {c['pass'] + c['xfail']} items{known}")
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


def summary_lines(results: list[dict], profile: dict | None = None) -> list[str]:
    """Per family (and per level) counts, then one line per unexpected failure (with what the run's deviation
    profile says of it)."""
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
            said = item_line(profile, r) if profile else None
            if said:
                lines.append(f"    profile: {said}")
    return lines


def diagnosis_summary(d: dict, ulps: bool = True) -> str:
    """A result's diagnosis in a few words (conformance/diagnosis/diagnose.py says it in full; older files have no kind)."""
    kind, what = d.get("kind"), f"{d['variant']} ({d['clause']})"
    close = f", {d['ulps']:.3g} ulp" if ulps and isinstance(d.get("ulps"), float) else ""
    where = (d.get("localisation") or {}).get("clause")
    if kind is None:
        return f"{'matches' if d['matches'] else 'closest known variant:'} {what}{close}"
    if kind in ("variant", "pair", "triple"):
        return f"matches {what}{close}"
    if kind == "unreplayed":
        return "not replayed (too large to keep its observations)" + (f"; departs at {where}" if where else "")
    if kind == "fit":
        return f"behaves as {d['variant']}{close}"
    if kind == "tie":
        return f"matches {' and '.join([d['variant'], *d.get('alternatives', [])])} equally"
    if kind == "partial":
        return f"no known variant matches; {what} explains part of it"
    return "no known variant explains it" + (f"; departs at {where}" if where else "")


def twin_lines(results: list[dict], shown: int = 5) -> list[str]:
    """Items that conform but are not bit-identical to their twin (one device): reported beside the verdict."""
    notes = [r for r in results if r.get("twin") and r["verdict"] in ("pass", "xfail")]
    if not notes:
        return []
    lines = [f"conforms, but {len(notes)} item(s) are not bit-identical to their twin:"]
    lines += [f"  {r['vector']} [{r.get('dtype')}]: {r['twin']}" for r in notes[:shown]]
    return lines + ([f"  ... and {len(notes) - shown} more (JSON report: 'twin')"] if len(notes) > shown else [])


def terminal_lines(meta: dict, results: list[dict], avoided: dict[str, str], stale: list[tuple[str, str]],
                   executed: int) -> list[tuple[str, bool]]:
    """The terminal summary, as (line, shown in red) pairs."""
    # The versions as the header has them: with -q pytest shows no header, and a port's name and version (P-3) or the
    # wrapped library's must still be on screen.
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    lines = [f"candidate {meta['candidate']} via the {meta['adapter']} adapter{' (raw)' if meta['raw'] else ''}"
             + (f"; {versions}" if versions else "")]
    if meta.get("declared_profile"):
        lines.append(f"judged against the spec with the declared profile: {', '.join(meta['declared_profile'])}")
    found = sentence(meta["profile"], meta.get("declared_profile") or ()) if meta.get("profile") else None
    if found:
        lines.append(f"profile: {found}")
    lines += summary_lines(results, meta.get("profile"))
    lines += twin_lines(results)
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
