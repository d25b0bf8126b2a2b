"""``--conformance-html``: one self-contained HTML page from a results document.

The page holds the summary matrix, the failures with their diagnosis, one
error-vs-step plot per vector (log scale, the bound drawn, both modes), the
property tier, and the environment.  No script, no external resource: inline
CSS and inline SVG only, so it can be archived and opened anywhere.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

from conformance.clauses import LEVELS
from conformance.report.document import VERDICTS, counts
from conformance.diagnosis.profile import item_line, sentence
from conformance.report.terminal import checkpoint_line, diagnosis_summary
from conformance.report.tables import unsupported_notes

CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1d1d1f; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 8px 0; } td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f5f5f7; } td.l, th.l { text-align: left; }
.pass { color: #1a7f37; } .fail, .error, .stale { color: #cf222e; font-weight: 600; } .xfail { color: #9a6700; }
.unsupported { color: #6e7781; }
.grid { display: flex; flex-wrap: wrap; gap: 10px; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 6px 8px; width: 300px; }
.card h3 { font-size: 12px; margin: 0 0 2px 0; font-weight: 600; word-break: break-all; }
.card p { font-size: 11px; margin: 2px 0; color: #444; }
pre { background: #f6f8fa; padding: 8px; font-size: 12px; overflow-x: auto; white-space: pre-wrap; }
.legend span { display: inline-block; margin-right: 14px; font-size: 12px; }
"""

COLOURS = {"trajectory": "#0969da", "single-step": "#8250df"}


def _e(x: Any) -> str:
    return html.escape(str(x))


def _num(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.inf


def plot(modes: dict) -> str:
    """An inline SVG: per step, ulps used (solid) and allowed (dashed) at the worst element, log scale, both modes."""
    width, height, left, bottom = 284, 120, 34, 16
    series = []
    for mode, rec in modes.items():
        curves = rec.get("curve") or {}
        if not curves:
            continue
        # The tensor whose worst element used the largest share of its bound.
        tensor = max(curves, key=lambda t: max((_num(u) / _num(a) if _num(a) else 0.0) for u, a in curves[t]))
        series.append((mode, tensor, [(_num(u), _num(a)) for u, a in curves[tensor]]))
    if not series:
        return "<p>no comparison (the run stopped before the first step)</p>"
    values = [v for _, _, pts in series for pair in pts for v in pair if v > 0 and math.isfinite(v)]
    lo = math.floor(math.log10(min(values))) if values else -1
    hi = math.ceil(math.log10(max(values))) if values else 1
    lo, hi = min(lo, hi - 1), max(hi, lo + 1)
    n = max(len(pts) for _, _, pts in series)

    def xy(i: int, v: float) -> tuple[float, float]:
        x = left + (width - left - 6) * (i / max(n - 1, 1))
        v = min(max(v, 10.0**lo), 10.0**hi) if math.isfinite(v) else 10.0**hi
        y = (height - bottom) - (height - bottom - 6) * (math.log10(v) - lo) / (hi - lo)
        return x, y

    parts = [f'<svg width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg" role="img">']
    for k in range(lo, hi + 1):
        _, y = xy(0, 10.0**k)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - 4}" y2="{y:.1f}" stroke="#eee"/>'
                     f'<text x="{left - 3}" y="{y + 3:.1f}" font-size="9" text-anchor="end">1e{k}</text>')
    for i in range(n):
        x, _ = xy(i, 1.0)
        parts.append(f'<text x="{x:.1f}" y="{height - 3}" font-size="9" text-anchor="middle">{i + 1}</text>')
    for mode, tensor, pts in series:
        colour = COLOURS.get(mode, "#333")
        for which, dash in ((0, ""), (1, ' stroke-dasharray="4 3"')):
            coords = " ".join("{:.1f},{:.1f}".format(*xy(i, p[which] if p[which] > 0 else 10.0**lo))
                              for i, p in enumerate(pts))
            label = f"{mode} {tensor}: ulps {'used' if which == 0 else 'allowed'}"
            parts.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="1.5"{dash}>'
                         f'<title>{_e(label)}</title></polyline>')
    parts.append("</svg>")
    return "".join(parts)


def _summary(results: list[dict]) -> str:
    by_family, by_level = counts(results)
    head = "<tr><th class=l>family / level</th>" + "".join(f"<th>{v}</th>" for v in VERDICTS) + "</tr>"
    rows = [f"<tr><td class=l>{_e(name)}</td>" + "".join(f'<td class="{v}">{c[v] or ""}</td>' for v in VERDICTS) + "</tr>"
            for name, c in sorted(by_family.items())]
    rows += [f"<tr><th class=l>level {_e(level)}</th>" + "".join(f"<td>{by_level[level][v] or ''}</td>" for v in VERDICTS)
             + "</tr>" for level in LEVELS if level in by_level]
    return f"<table>{head}{''.join(rows)}</table>"


def _environment(doc: dict) -> str:
    env = doc.get("environment", {})
    rows = [("candidate", doc["candidate"]), ("adapter", doc["adapter"] + (" (raw)" if doc.get("raw") else "")),
            ("versions", ", ".join(f"{k} {v}" for k, v in doc.get("versions", {}).items())),
            ("device", doc.get("device")),
            ("execution", f"{doc.get('execution', 'eager')} ({doc.get('execution_text', '')})"
                          + (f"; {doc['world_size']} ranks, {doc.get('split', 'even')} split" if doc.get("world_size") else "")),
            ("mode", doc.get("mode")),
            *([("checkpoint", checkpoint_line(doc["checkpoint"]))] if doc.get("checkpoint") else []),
            ("flush-to-zero", ", ".join(f"{d}: {'on' if on else 'off'}" for d, on in env.get("flush_to_zero", {}).items())),
            ("platform", env.get("platform", "")), ("python / numpy", f"{env.get('python', '')} / {env.get('numpy', '')}"),
            ("vector set", f"spec {doc['vector_set']['spec_version']}, sha256 {doc['vector_set']['sha256']}"),
            ("expectations", doc.get("expectations") or "none"),
            ("translations", "; ".join(doc.get("translations", [])) or "none"),
            ("time", "{total_s} s, {candidate_s} s inside the candidate".format(**doc.get("timing", {"total_s": "?", "candidate_s": "?"})))]
    return "<table>" + "".join(f"<tr><th class=l>{_e(k)}</th><td class=l>{_e(v)}</td></tr>" for k, v in rows) + "</table>"


def _diagnosis(r: dict) -> str:
    d = r.get("diagnosis")
    if not d:
        return ""
    return diagnosis_summary(d, ulps=False)


def _card(r: dict) -> str:
    title = f"{r['vector']} [{r.get('dtype') or '-'}]"
    lines = [f'<span class="{r["verdict"]}">{r["verdict"]}</span> · share of bound used {_num(r.get("max_ratio")):.3g}'
             if r.get("max_ratio") is not None else f'<span class="{r["verdict"]}">{r["verdict"]}</span>']
    if r.get("first_failing_step"):
        lines.append(f"first failing step {r['first_failing_step']}")
    if r.get("diagnosis"):
        lines.append(f"diagnosis: {_e(diagnosis_summary(r['diagnosis'], ulps=False))}")
    if r["verdict"] == "unsupported":
        lines.append("unsupported: " + _e(r.get("unsupported") or r.get("message") or "?"))
    for mode, out in (r.get("modes") or {}).items():
        if out.get("unsupported"):
            lines.append(f"{_e(mode)} mode unsupported: {_e(out['unsupported'])}")
    if r.get("observed", {}).get("not_exposed"):
        lines.append(f"checked: {_e(', '.join(r['observed']['checked']))}; not exposed: {_e(', '.join(r['observed']['not_exposed']))}")
    body = plot(r.get("modes") or {}) if r.get("modes") else ""
    return (f'<div class="card"><h3>{_e(title)}</h3>' + "".join(f"<p>{line}</p>" for line in lines) + body
            + f"<p>{_e(', '.join(r.get('clauses', [])))}</p></div>")


def render(doc: dict) -> str:
    """The whole page for one results document."""
    results = doc["results"]
    problems = [r for r in results if r["verdict"] in ("fail", "error", "stale")]
    known = [r for r in results if r["verdict"] == "xfail"]
    vectors = [r for r in results if r.get("modes")]
    props = [r for r in results if r["family"] == "property"]
    found = sentence(doc["profile"], doc.get("declared_profile") or ()) if doc.get("profile") else None
    out = [f"<!doctype html><html lang=en><head><meta charset=utf-8><title>Adam conformance: {_e(doc['candidate'])}</title>",
           f"<style>{CSS}</style></head><body>",
           f"<h1>Adam conformance: {_e(doc['candidate'])}</h1>",
           f"<p>{_e(', '.join(f'{v} {n}' for v, n in sorted(doc['summary'].items())))}</p>",
           *([f"<p>Judged against the spec with the declared profile: {_e(' + '.join(doc['declared_profile']))}</p>"]
             if doc.get("declared_profile") else []),
           *([f"<h2>Deviation profile</h2><p>{_e(found)}</p>"] if found else []),
           "<h2>Summary</h2>", _summary(results), "<h2>Environment</h2>", _environment(doc)]
    if problems:
        out.append("<h2>Failures</h2>")
        for r in problems:
            step = f" from step {r['first_failing_step']}" if r.get("first_failing_step") else ""
            diag = ""
            if r.get("diagnosis"):
                d = r["diagnosis"]
                diag = f"\ndiagnosis: {d.get('text') or diagnosis_summary(d)}"
                if d.get("localisation"):
                    diag += f"\nlocalisation: {d['localisation']['text']}"
                said = item_line(doc["profile"], r) if doc.get("profile") else None
                diag += f"\nprofile: {said}" if said else ""
            out.append(f"<pre><b>{_e(r['verdict'].upper())}: {_e(r['vector'])} [{_e(r.get('dtype') or '-')}]{step}</b>\n"
                       f"{_e(r.get('message') or '')}{_e(diag)}</pre>")
    notes = unsupported_notes([doc])
    if notes:
        out.append("<h2>Unsupported</h2><p>Not implemented by the candidate or declared absent; never counted as a pass.</p>"
                   f"<p>{_e(notes[0].split(': ', 1)[1])}</p>")
    if known:
        out.append("<h2>Known divergences (expected failures)</h2><table><tr><th class=l>vector</th><th class=l>reason</th>"
                   "<th class=l>diagnosis</th></tr>")
        out += [f"<tr><td class=l>{_e(r['vector'])} [{_e(r.get('dtype') or '-')}]</td>"
                f"<td class=l>{_e(r.get('expected_divergence') or '')}</td><td class=l>{_e(_diagnosis(r))}</td></tr>"
                for r in known]
        out.append("</table>")
    if props:
        out.append("<h2>Property tier</h2><table><tr><th class=l>property</th><th>verdict</th><th>examples</th>"
                   "<th>largest share of the bound</th><th class=l>worst example</th></tr>")
        out += [f"<tr><td class=l>{_e(r['vector'])}</td><td class='{r['verdict']}'>{r['verdict']}</td><td>{r.get('examples', '')}</td>"
                f"<td>{_num(r.get('worst_ratio', 0)):.3g}</td><td class=l>{_e(r.get('worst_example', ''))}</td></tr>" for r in props]
        out.append("</table>")
    if vectors:
        legend = "".join(f'<span style="color:{c}">━ {m}: ulps used, ┅ allowed</span>' for m, c in COLOURS.items())
        out += ["<h2>Error against step</h2>",
                f"<p class=legend>{legend}<br>At each step, the element with the largest share of its bound, in the tensor "
                "where that share is largest; log scale, in ulps of the vector's dtype.</p>", '<div class="grid">']
        out += [_card(r) for r in vectors]
        out.append("</div>")
    out.append("</body></html>\n")
    return "\n".join(out)


def write(path: str | Path, doc: dict) -> None:
    """Write the page (creating parent folders)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(doc), encoding="utf-8")
