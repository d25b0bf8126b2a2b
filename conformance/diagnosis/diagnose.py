"""Diagnosis: where a failing candidate departs from the spec, and which known defect, if any, explains it.

Two findings per failing item (spec E, "Diagnosis"):

- **Localisation**, from the run itself (``localise.py``): the first tensor,
  in the order of the update, that leaves its bound at the first failing step
  names the clause that is broken.
- **Explanation**, by replaying known departures on the same vector, in the
  candidate's dtype and mode, and measuring the candidate against each with
  the same error bound as against the spec: every wrong variant of
  ``reference/variants.py``; if none matches, the correct port with one
  hyperparameter changed (``FITS``); if none of those matches either, pairs of
  deviations composed into one port (``variants.compose``), then triples built
  on the nearest pairs.  A match must also reproduce the candidate's slot
  dtypes and shapes where they differ from the spec's.  Several that match
  equally are a tie, reported as one; a nearest one that does not match is
  named only if it explains part of the departure (``EXPLAINS``), and never at
  an infinite distance.

Every match found is recorded (``explanations``), so that the run's deviation
profile (``conformance/diagnosis/profile.py``) can choose among them.

A structural problem of a slot (wrong dtype or shape) does not stop this: the
slot's values are compared as numbers in the run's dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from conformance.errors import Unsupported
from conformance.adapters.numpy_port import NumpyPortAdapter
from conformance.judge.compare import Comparison, as_state
from conformance.dtypes import NUMPY_DTYPES
from conformance.drive.runner import Outcome, run
from conformance.diagnosis.localise import Localisation, joined, localise, structural_problems
from reference import variants
from reference.port import Adam
from reference.variants import composable, compose

#: Wrong variants that cannot show in the numbers of a trajectory, and why; every other one is replayed.
NOT_REPLAYED = {
    "WeightsByVariable": "the order of get_weights shows in the API checks, or as a state that does not load",
    "KerasSlotNames": "slot names show in the API checks only",
    "ConfigWithoutDecay": "get_config shows in the API checks only",
    "SetWeightsKeepsIterations": "shows as a state that does not load (iterations read back wrong), named as such",
    "MutatesGradient": "the harness hands every call fresh gradient arrays, so it shows in the API checks only",
}
CANDIDATES = [cls for cls in variants.WRONG if cls.__name__ not in NOT_REPLAYED]

#: A departure that does not match is still named when the candidate is at most this share as far from it as from
#: the spec's oracle: it then accounts for more than half of the departure (spec E, "Diagnosis").
EXPLAINS = 0.5
#: Pairs are tried between this many of the nearest single variants (and those localised where the candidate is)
#: and every other variant that departs on the vector, triples between this many of the nearest pairs and every
#: variant: a bounded number of replays per item.
NEAREST_FOR_PAIRS = 3



# --- fitted hyperparameters: the correct port with one value changed, from a fixed list ------------------------------


def _fit(label: str, doc: str, **change: Any) -> type:
    """The correct port with the hyperparameters in force changed as ``change`` says (a value, or a function of them)."""

    def _values_in_force(self: Adam) -> dict[str, float]:
        values = Adam._values_in_force(self)
        return {**values, **{k: f(values) if callable(f) else f for k, f in change.items()}}

    return type(label, (Adam,), {"__doc__": doc, "_values_in_force": _values_in_force})


def _float32(x: float) -> float:
    return float(np.float32(x))


#: Plausible alternatives, each one value of another framework's default or a common slip; never a numeric search.
FITS = [
    _fit("epsilon = 1e-08", "epsilon 1e-8, the default of torch, optax and TF 1", epsilon=1e-8),
    _fit("epsilon stored as float32", "epsilon rounded to float32 like the other hyperparameters",
         epsilon=lambda h: _float32(h["epsilon"])),
    _fit("learning_rate x 10", "a learning rate ten times larger", learning_rate=lambda h: 10.0 * h["learning_rate"]),
    _fit("learning_rate x 0.1", "a learning rate ten times smaller", learning_rate=lambda h: 0.1 * h["learning_rate"]),
    _fit("beta_1 and beta_2 swapped", "the two betas exchanged", beta_1=lambda h: h["beta_2"], beta_2=lambda h: h["beta_1"]),
]


# --- replays -----------------------------------------------------------------------------------------------------


def _comparable(observed: dict, want: dict, cmp: Comparison) -> dict:
    """The candidate's observation with slots of a wrong dtype cast to their variable's and slots of a wrong shape left
    out: the structural problem is reported by the comparison with the spec; the diagnosis looks at the values."""
    out: dict = {"iterations": observed.get("iterations")}
    for name, fields in observed.items():
        if name == "iterations":
            continue
        dt = NUMPY_DTYPES[cmp.dtype_of(f"{name}.variable")]
        out[name] = {}
        for f, x in fields.items():
            w = (want.get(name) or {}).get(f)
            if x is not None and w is not None and f != "variable" and np.shape(x) != np.shape(w):
                x = None
            elif x is not None and np.asarray(x).dtype != dt:
                with np.errstate(over="ignore", invalid="ignore"):
                    x = np.asarray(x).astype(dt)
            out[name][f] = x
    return out


@dataclass
class Replay:
    """One known departure replayed on the vector, and the candidate measured against it."""

    name: str
    kind: str  # "variant", "fit", "pair", "triple"
    members: tuple[type, ...]
    ratio: float  # the largest share of the bound the candidate's difference from it uses (<= 1: it matches)
    ulps: float
    locus: str | None  # where the replay itself departs from the spec
    structure: bool = True  # it has the candidate's slot dtypes and shapes where those differ from the spec's

    @property
    def matches(self) -> bool:
        return self.ratio <= 1.0 and self.structure

    @property
    def names(self) -> list[str]:
        """The deviations it is made of, as ``--profile`` takes them (a fit by its label)."""
        return [self.name] if self.kind == "fit" else [c.__name__ for c in self.members]

    @property
    def clause(self) -> str:
        return "; ".join(dict.fromkeys(_describe(c)[0] for c in self.members))

    def described(self) -> str:
        if self.kind == "fit":
            return self.name
        return " + ".join(f"{c.__name__} ({'%s: %s' % _describe(c)})" for c in self.members)


def _describe(cls: type) -> tuple[str, str]:
    clause, _, text = (cls.__doc__ or "").strip().splitlines()[0].partition(": ")
    return clause, text.rstrip(".").replace("``", "")


def _member_text(replay: Replay, name: str) -> tuple[str, str]:
    """(clause, what it does) of one deviation of a replay; a fit is the spec with a hyperparameter changed."""
    if replay.kind == "fit":
        return "", name
    return _describe(next(c for c in replay.members if c.__name__ == name))


def _compare(outcome: Outcome, replay: Outcome) -> Comparison:
    """The candidate's observations against a replay's, under the candidate's bounds."""
    cmp = Comparison(outcome.comparison.dtype, outcome.comparison.dtypes)
    for s, (observed, expected, errors) in enumerate(zip(outcome.observed, replay.observed, outcome.errors), 1):
        want = as_state(expected)
        cmp.add_step(s, _comparable(observed, want, cmp), want, errors, outcome.scale)
    return cmp


def _identical(a: list[dict], b: list[dict] | None) -> bool:
    """Whether two replays observed the same states, bit for bit (NaN equal to NaN)."""
    if b is None or len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x.get("iterations") != y.get("iterations") or x.keys() != y.keys():
            return False
        for name, fields in x.items():
            if name == "iterations":
                continue
            for f, value in fields.items():
                other = y[name].get(f)
                if (value is None) != (other is None):
                    return False
                if value is not None:  # a slot's dtype is part of what a replay shows (Float32State on zeros)
                    value, other = np.asarray(value), np.asarray(other)
                    if value.dtype != other.dtype or not np.array_equal(value, other, equal_nan=True):
                        return False
    return True


def _distance(cmp: Comparison) -> tuple[float, float]:
    """(share of the bound used, ulps) of a comparison; infinite for a structural mismatch (NaN positions, iterations)."""
    if cmp.problems:
        return math.inf, math.inf
    return cmp.max_ratio, max((w.ulps for w in cmp.worst.values()), default=0.0)


class _Search:
    """The replays of one failing item, each run once; with a declared profile (``--profile``), every replay is the
    profile's port with the deviations tried composed in."""

    def __init__(self, vector: Any, dtype: str, outcome: Outcome, base: tuple[type, ...] = ()) -> None:
        self.vector, self.dtype, self.outcome, self.base = vector, dtype, outcome, base
        self.oracle: Outcome | None = None  # the spec's port (with the declared profile) replayed, once known

    def outcome_of(self, port: type) -> Outcome | None:
        """``port`` run on the vector in the candidate's dtype and mode; None if it cannot run it."""
        try:
            # A replayed port is one written wrong or refitted on purpose: its divisions by zero and overflows are
            # values to compare with the candidate's, not warnings for the user's report.
            with np.errstate(all="ignore"):
                # Judged as the candidate was: in single-step mode each step starts from the same (profile's) state.
                return run(NumpyPortAdapter(variants.judging(port)), self.vector, self.dtype, (self.outcome.mode,), keep=True,
                           profile=tuple(b.__name__ for b in self.base))[0]
        except Unsupported:
            return None

    def replay(self, kind: str, members: tuple[type, ...]) -> Replay | None:
        """The candidate against the deviations ``members`` (on the declared profile); None if they cannot make one
        port with it, if it cannot run the vector, or if it never departs from the spec on it."""
        if any(m in self.base for m in members) or not composable(*self.base, *members):
            return None
        port = compose(*self.base, *members)
        name = members[0].__name__ if kind == "fit" else " + ".join(m.__name__ for m in members)
        out = self.outcome_of(port)
        if out is None or not out.observed or len(out.observed) < len(self.outcome.observed):
            return None  # it stopped before the candidate did: nothing to compare the later steps with
        if out.comparison.passed or (self.oracle is not None and _identical(out.observed, self.oracle.observed)):
            return None  # the same as the spec (or the spec's own port) on this vector: it cannot explain a departure
        ratio, ulps = _distance(_compare(self.outcome, out))
        return Replay(name, kind, members, ratio, ulps, localise(out.comparison, out.mode).tensor,
                      structural_problems(out) == structural_problems(self.outcome))


# --- the diagnosis -----------------------------------------------------------------------------------------------


@dataclass
class Diagnosis:
    """What the kit says about one failing item: the localisation, and the known departure(s) that explain it."""

    kind: str  # "variant", "tie", "fit", "pair", "triple", "partial" (nearest explains part), "none", "unreplayed"
    localisation: Localisation
    found: list[Replay] = field(default_factory=list)  # the match(es), or the nearest for "partial" / "none"
    spec_ratio: float = math.inf  # the candidate's distance from the spec, in the same measure
    mode: str = ""
    seconds: float = 0.0  # time the diagnosis took (replays included)

    @property
    def matches(self) -> bool:
        return self.kind in ("variant", "tie", "fit", "pair", "triple")

    @property
    def best(self) -> Replay | None:
        return self.found[0] if self.found else None

    def text(self) -> str:
        """One line: which known departure explains the candidate, or that none does."""
        b, mode = self.best, f"{self.mode} mode"
        if self.kind == "unreplayed":
            return f"not replayed ({self.mode} mode kept no observations: a large vector, or a run that stopped at once)"
        if b is None:
            return f"no known variant explains it (none departs from the spec on this vector); see the localisation ({mode})"
        used = f"to {b.ulps:.3g} ulp (uses {b.ratio:.2g} of the bound, {mode})"
        if self.kind == "variant":
            return f"matches {b.described()} {used}"
        if self.kind == "pair":
            return f"matches the pair {b.described()}: both defects at once, {used}"
        if self.kind == "triple":
            return f"matches {b.described()}: three defects at once, {used}"
        if self.kind == "fit":
            return f"behaves as {b.name}: the spec's update with that one hyperparameter changed, {used}"
        if self.kind == "tie":
            names = joined([r.name for r in self.found])
            return f"matches {names} equally: this vector cannot tell them apart ({mode})"
        away = f"{b.ratio:.3g} times the bound away, against {self.spec_ratio:.3g} from the spec"
        if self.kind == "partial":
            return f"no known variant matches; {b.described()} explains part of it: {away} ({mode})"
        return f"no known variant explains it (the nearest, {b.name}, is {away}); see the localisation ({mode})"

    def lines(self) -> list[str]:
        """The lines of the failure report: the diagnosis, then the localisation."""
        return [f"diagnosis: {self.text()}", f"localisation: {self.localisation.text()}"]

    def as_dict(self) -> dict:
        b = self.best if self.matches or self.kind == "partial" else None
        num = (lambda x: x if math.isfinite(x) else "inf")
        return {"kind": self.kind, "matches": self.matches, "mode": self.mode, "text": self.text(),
                "variant": b.name if b else "", "clause": b.clause if b else (self.localisation.clause or ""),
                "description": b.described() if b else "", "ratio": num(b.ratio) if b else "inf",
                "ulps": num(b.ulps) if b else "inf", "spec_ratio": num(self.spec_ratio),
                "alternatives": [r.name for r in self.found[1:]] if self.kind == "tie" else [],
                "explanations": [r.names for r in self.found] if self.matches else [],
                "members": [[name, *_member_text(r, name)] for r in self.found if self.matches for name in r.names],
                "localisation": self.localisation.as_dict(), "seconds": round(self.seconds, 3)}


def chosen(outcomes: list[Outcome]) -> Outcome | None:
    """The outcome to diagnose: a numerically failing one, single-step first (nothing accumulates there) unless it
    stopped earlier than the trajectory (a state it could not load)."""
    numeric = [o for o in outcomes if o.unsupported is None and not o.comparison.passed]
    if not numeric:
        return None
    return max(numeric, key=lambda o: (len(o.observed or ()), o.mode == "single-step"))


def diagnose(vector: Any, dtype: str, outcome: Outcome, profile: tuple[str, ...] = ()) -> Diagnosis | None:
    """The diagnosis of a failing ``outcome``; None if its numbers did not fail.  ``profile``: the deviations the
    candidate declares; what is found is what departs further from them."""
    import time

    start = time.perf_counter()
    if outcome.comparison.passed:
        return None
    structural = structural_problems(outcome)
    if not outcome.observed or outcome.errors is None:
        return Diagnosis("unreplayed", localise(outcome.comparison, outcome.mode, structural), mode=outcome.mode)
    search = _Search(vector, dtype, outcome, tuple(variants.deviation(name) for name in profile))
    oracle = search.outcome_of(compose(*search.base))
    search.oracle = oracle
    if oracle is None or not oracle.observed:
        return Diagnosis("unreplayed", localise(outcome.comparison, outcome.mode, structural), mode=outcome.mode)
    # Against the oracle's replay, on the values: a slot of the wrong dtype is compared as a number.
    spec_cmp = _compare(outcome, oracle)
    spec_ratio = _distance(spec_cmp)[0]
    loc = localise(spec_cmp, outcome.mode, structural)
    diagnosis = Diagnosis("none", loc, spec_ratio=spec_ratio, mode=outcome.mode)

    singles = [r for cls in CANDIDATES if (r := search.replay("variant", (cls,)))]
    tried = list(singles)
    found = _matching(singles)
    if not found:
        fits = [r for port in FITS if (r := search.replay("fit", (port,)))]
        tried += fits
        found = _matching(fits)
    pairs: list[Replay] = []
    if not found:
        pairs = _pairs(search, singles, loc.tensor)
        tried += pairs
        found = _matching(pairs)
    if not found and pairs:
        triples = _triples(search, pairs, singles)
        tried += triples
        found = _matching(triples)
    if found:
        diagnosis.kind = "tie" if len(found) > 1 else found[0].kind
        diagnosis.found = found
    elif tried:
        nearest = min(tried, key=lambda r: (r.ratio, r.ulps))
        diagnosis.found = [nearest]
        # An infinite distance (NaN where the other has none, iterations that differ) explains nothing.
        diagnosis.kind = "partial" if math.isfinite(nearest.ratio) and nearest.ratio <= EXPLAINS * spec_ratio else "none"
    else:
        diagnosis.kind = "none"  # no known departure shows on this vector at all
    diagnosis.seconds = time.perf_counter() - start
    return diagnosis


def _matching(replays: list[Replay]) -> list[Replay]:
    """The replays the candidate stays within the bound of, nearest first."""
    return sorted((r for r in replays if r.matches), key=lambda r: (r.ratio, r.ulps))


def _pairs(search: _Search, singles: list[Replay], locus: str | None) -> list[Replay]:
    """Pairs of variants that depart on this vector, one of them among the nearest or localised where the candidate is;
    pairs of variants that override the same hook cannot be built and are not tried."""
    ranked = sorted(singles, key=lambda r: (r.ratio, r.ulps))
    lead = ranked[:NEAREST_FOR_PAIRS] + [r for r in ranked[NEAREST_FOR_PAIRS:] if locus and r.locus == locus]
    seen, out = set(), []
    for a in lead:
        for b in singles:
            (x,), (y,) = a.members, b.members
            key = frozenset((x, y))
            if x is y or key in seen or not composable(x, y):
                continue
            seen.add(key)
            r = search.replay("pair", compose(x, y).__bases__)
            if r:
                out.append(r)
    return out


def _triples(search: _Search, pairs: list[Replay], singles: list[Replay]) -> list[Replay]:
    """Triples built on the nearest pairs (those that match by value first: what they lack is a slot's structure),
    each with every other variant that departs on the vector and composes with both."""
    ranked = sorted(pairs, key=lambda r: (r.ratio > 1.0, r.ratio, r.ulps))[:NEAREST_FOR_PAIRS]
    if ranked and ranked[0].ratio <= 1.0:
        # A pair matches by value and lacks only the slots' structure: the third is one that has that structure.
        ranked = [r for r in ranked if r.ratio <= 1.0]
        singles = [s for s in singles if s.structure] or singles
    seen, out = set(), []
    for pair in ranked:
        for single in singles:
            (z,) = single.members
            key = frozenset((*pair.members, z))
            if z in pair.members or key in seen or not composable(*pair.members, z):
                continue
            seen.add(key)
            r = search.replay("triple", compose(*pair.members, z).__bases__)
            if r:
                out.append(r)
    return out


def not_composable() -> list[tuple[str, str]]:
    """The pairs of replayed variants that override the same hook, so that the diagnosis never tries them."""
    return [(a.__name__, b.__name__) for i, a in enumerate(CANDIDATES) for b in CANDIDATES[i + 1:] if not composable(a, b)]
