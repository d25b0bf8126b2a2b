"""The deviation profile of a whole run: the fewest known deviations that explain the port's failing items together.

A real port usually departs from the spec in two or three ways at once, and one item shows one of them, another
item two.  Each item's diagnosis records every set of deviations it found to explain that item
(``Diagnosis.as_dict()["explanations"]``: a variant, a fit, or variants composed with ``variants.compose``).  The
profile is chosen greedily over those sets: the deviation that completes the most items' explanations (then the
one that goes furthest towards them) joins the profile, the items are judged again against the spec with the
profile so far, and this repeats until every item is explained or no deviation helps.  Each item then says which
deviations of the profile explain it; the others stay unexplained, with their own diagnosis ("not replayed" for
an item too large to keep its observations, never "no known variant").
"""

from __future__ import annotations

from collections import Counter

#: Verdicts whose items the profile explains: failures, and the known divergences of an expectations file.
EXPLAINED_VERDICTS = ("fail", "xfail")


def _options(result: dict) -> list[frozenset[str]]:
    """The sets of deviations that explain one item, by its diagnosis."""
    return [frozenset(e) for e in (result.get("diagnosis") or {}).get("explanations", [])]


def build(results: list[dict]) -> dict:
    """The profile of a run from its result records: the deviations in the order chosen, with their clause, their
    description and how many items each explains, the items explained by each set, and the items left unexplained."""
    items = [r for r in results if r["verdict"] in EXPLAINED_VERDICTS and r.get("diagnosis")]
    options = {id(r): _options(r) for r in items}
    chosen: list[str] = []

    def score(profile: set[str]) -> tuple[int, float]:
        """(items fully explained by the profile, progress towards the others' nearest explanation)."""
        done, progress = 0, 0.0
        for r in items:
            sets = options[id(r)]
            if any(e <= profile for e in sets):
                done += 1
            elif sets:
                progress += max(len(e & profile) / len(e) for e in sets)
        return done, progress

    current = score(set())
    while True:
        pool = sorted({d for sets in options.values() for e in sets for d in e} - set(chosen))
        trials = [(score(set(chosen) | {d}), -_first_seen(items, d), d) for d in pool]
        if not trials:
            break
        best_score, _, best = max(trials)
        if best_score <= current:
            break  # nothing known explains or goes further towards what remains
        chosen.append(best)
        current = best_score
    profile = set(chosen)
    explained_by: dict[str, list[str]] = {}
    counts: Counter = Counter()
    unexplained = []
    for r in items:
        fitting = sorted((e for e in options[id(r)] if e <= profile), key=lambda e: (len(e), sorted(e)))
        key = f"{r['vector']}[{r['dtype']}]" if r.get("dtype") else r["vector"]
        if fitting:
            members = [d for d in chosen if d in fitting[0]]
            explained_by[key] = members
            counts.update(members)
        else:
            unexplained.append({"item": key, "why": (r["diagnosis"] or {}).get("text", "")})
    described = {}
    for r in items:
        d = r["diagnosis"]
        for name, clause, text in d.get("members", []):
            described.setdefault(name, (clause, text))
    return {
        "deviations": [{"name": d, "clause": described.get(d, ("", ""))[0], "description": described.get(d, ("", d))[1],
                        "items": counts[d]} for d in chosen],
        "explained_by": explained_by,
        "unexplained": unexplained,
        "items": len(items),
    }


def _first_seen(items: list[dict], name: str) -> int:
    """Where a deviation first appears among the items' explanations (ties go to the earlier one)."""
    for i, r in enumerate(items):
        if any(name in e for e in _options(r)):
            return i
    return len(items)


def sentence(profile: dict, declared: list[str] | tuple[str, ...] = ()) -> str | None:
    """The profile in one sentence, or None when nothing failed: which deviations (beyond those ``declared`` with
    ``--profile``), how many items each explains, and how many items remain unexplained."""
    if not profile["items"]:
        return None
    parts = [f"{d['description'] or d['name']} [{d['name']}] ({d['items']} item{'s' if d['items'] != 1 else ''})"
             for d in profile["deviations"]]
    left = profile["unexplained"]
    spec = f"the spec with the declared {' + '.join(declared)} and further" if declared else "the spec with"
    text = (f"behaves as {spec}: " + "; ".join(parts)) if parts else "no known deviation explains its failures"
    if left:
        text += f"; {len(left)} item{'s' if len(left) != 1 else ''} unexplained: " + ", ".join(u["item"] for u in left[:5])
        text += ", ..." if len(left) > 5 else ""
    return text


def item_line(profile: dict, result: dict) -> str | None:
    """What the profile says of one item: the deviations that explain it, or that it stays unexplained."""
    key = f"{result['vector']}[{result['dtype']}]" if result.get("dtype") else result["vector"]
    if key in profile["explained_by"]:
        return "explained by the profile's " + " + ".join(profile["explained_by"][key])
    if any(u["item"] == key for u in profile["unexplained"]):
        return "not explained by the profile"
    return None
