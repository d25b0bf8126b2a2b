"""How often the diagnosis is right on wrong ports that are not among the known variants.

``python -m tests.diagnosis_accuracy`` runs every port of ``tests/wrong_ports.py`` over the default vectors
(both modes, as the plugin does), diagnoses each failing item as the plugin does, and prints a markdown
table (docs/diagnosis.md): per port, how many failing items the localisation names the right tensor for,
and how many the diagnosis names the right defect for; then the slowest diagnosis.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass, field

from conformance.errors import Unsupported
from conformance.adapters.numpy_port import NumpyPortAdapter
from conformance.diagnosis.diagnose import Diagnosis, chosen, diagnose
from conformance.load.files import bundled_paths, load_paths
from conformance.drive.runner import MODES, run
from reference import variants
from tests import wrong_ports


def default_vectors() -> list:
    """The bundled vectors that a run without ``--scale`` uses."""
    vectors, _ = load_paths(bundled_paths())
    return [v for v in vectors if "large" not in v.record.get("flags", [])]


def named(d: Diagnosis) -> list[frozenset[str]]:
    """What a diagnosis names as matching: one set of defect names per match (two for a pair)."""
    if not d.matches:
        return []
    return [frozenset(r.name.split(" + ")) if r.kind != "fit" else frozenset({r.name}) for r in d.found]


def expected(port: type, vector, dtype: str, mode: str) -> tuple[list[frozenset[str]], set[str]]:
    """The right answers for one item (an empty list: "no known variant explains it") and the right loci."""
    if port in wrong_ports.OUTSIDE:
        return [], {port.locus}
    if port in wrong_ports.FITTED:
        return [frozenset({port.fit})] + [frozenset({a}) for a in port.also], {port.locus}
    departing = []
    for name in port.members:
        try:
            alone = run(NumpyPortAdapter(getattr(variants, name)), vector, dtype, (mode,), keep=False)[0]
        except Unsupported:
            continue
        if not alone.comparison.passed:
            departing.append(name)
    departing = departing or list(port.members)
    loci = {t for name in departing for t in wrong_ports.LOCUS[name].split("|")}
    return [frozenset(departing)], loci


@dataclass
class Tally:
    """The counts of one port."""

    items: int = 0
    located: int = 0
    right: int = 0
    tie: int = 0
    said: Counter = field(default_factory=Counter)  # what the wrong answers were


def answer(d: Diagnosis) -> str:
    """A short form of what a diagnosis said, for the table."""
    if d.kind == "unreplayed":
        return "not replayed (a vector too large to keep)"
    if d.kind == "none":
        return "no known variant explains it"
    names = " / ".join(r.name for r in d.found)
    return {"partial": f"partly {names}", "tie": f"tie {names}"}.get(d.kind, names)


def measure(ports: list[type], vectors: list) -> tuple[dict[str, Tally], tuple[float, str]]:
    """Run every port over ``vectors``; the tallies and the slowest diagnosis (seconds, item)."""
    tallies: dict[str, Tally] = {}
    slowest = (0.0, "")
    for port in ports:
        tally = tallies.setdefault(port.__name__, Tally())
        for vector in vectors:
            for dtype in vector.record["dtypes"]:
                try:
                    outcomes = run(NumpyPortAdapter(port), vector, dtype, MODES)
                except Unsupported:
                    continue
                outcome = chosen(outcomes)
                if outcome is None:
                    continue
                start = time.perf_counter()
                d = diagnose(vector, dtype, outcome)
                took = time.perf_counter() - start
                slowest = max(slowest, (took, f"{port.__name__} on {vector.id} [{dtype}]"))
                right, loci = expected(port, vector, dtype, outcome.mode)
                said = named(d)
                tally.items += 1
                tally.located += d.localisation.tensor in loci
                if (not right and d.kind == "none") or (d.kind != "tie" and said[:1] and said[0] in right):
                    tally.right += 1
                elif d.kind == "tie" and any(s in right for s in said):
                    tally.tie += 1
                else:
                    tally.said[answer(d)] += 1
    return tallies, slowest


def table(tallies: dict[str, Tally]) -> str:
    """The markdown table of ``measure``'s tallies, with a total row per kind of port."""
    kinds = {"outside the list": wrong_ports.OUTSIDE, "one hyperparameter changed": wrong_ports.FITTED,
             "two listed defects": wrong_ports.PAIRS}
    rows = ["| port | kind | defect | failing items | localisation right | diagnosis right | tie incl. the right one | "
            "wrong answers (most common) |", "|---|---|---|---|---|---|---|---|"]
    for kind, ports in kinds.items():
        total = Tally()
        for port in ports:
            t = tallies[port.__name__]
            wrong = ", ".join(f"{what} ({n})" for what, n in t.said.most_common(2)) or "-"
            rows.append(f"| `{port.__name__}` | {kind} | {port.__doc__.splitlines()[0].rstrip('.').replace('|', chr(92) + '|')} | {t.items} | "
                        f"{t.located} | {t.right} | {t.tie} | {wrong} |")
            total.items, total.located, total.right, total.tie = (total.items + t.items, total.located + t.located,
                                                                  total.right + t.right, total.tie + t.tie)
        pct = (lambda n: f"{n} ({100.0 * n / max(total.items, 1):.0f}%)")
        rows.append(f"| **all** | {kind} | | {total.items} | {pct(total.located)} | {pct(total.right)} | "
                    f"{pct(total.tie)} | |")
    return "\n".join(rows) + "\n"


def main(argv: list[str]) -> int:
    names = set(argv)
    ports = [p for p in wrong_ports.ALL if not names or p.__name__ in names]
    start = time.perf_counter()
    tallies, (seconds, item) = measure(ports, default_vectors())
    if names:
        for name, t in tallies.items():
            print(name, t)
    else:
        print(table(tallies))
    print(f"slowest diagnosis: {seconds:.2f} s ({item}); whole measurement {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
