"""Diagnosis: which known variant a failing candidate's trajectory matches.

Each wrong variant of ``reference/variants.py`` is replayed on the failing
vector, in the candidate's dtype and mode, and the candidate's observations
are measured against it with the same error bound as against the spec.  A
variant the candidate stays within is named ("matches Algorithm1Epsilon to
0.4 ulp"); otherwise the closest one is reported as such.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from conformance.adapters import Unsupported
from conformance.adapters.numpy_port import NumpyPortAdapter
from conformance.compare import Comparison, as_state
from conformance.runner import Outcome, run
from reference import variants

#: Wrong variants that cannot show in the numbers of a trajectory, and why; every other one is replayed.
NOT_REPLAYED = {
    "WeightsByVariable": "the order of get_weights shows in the API checks, or as a state that does not load",
    "KerasSlotNames": "slot names show in the API checks only",
    "ConfigWithoutDecay": "get_config shows in the API checks only",
    "SetWeightsKeepsIterations": "shows as a state that does not load (iterations read back wrong), named as such",
    "MutatesGradient": "the harness hands every call fresh gradient arrays, so it shows in the API checks only",
}
CANDIDATES = [cls for cls in variants.WRONG if cls.__name__ not in NOT_REPLAYED]


@dataclass
class Diagnosis:
    """The closest known variant and how close the candidate is to it."""

    variant: str
    clause: str
    description: str
    ratio: float  # largest share of the error bound used against the variant (<= 1: within bound)
    ulps: float  # largest difference from the variant, in ulps of the candidate's dtype
    mode: str

    @property
    def matches(self) -> bool:
        return self.ratio <= 1.0

    def text(self) -> str:
        what = f"{self.variant} ({self.clause}: {self.description})"
        if self.matches:
            return f"matches {what} to {self.ulps:.3g} ulp (uses {self.ratio:.2g} of the bound, {self.mode} mode)"
        return f"no known variant matches; the closest is {what}, {self.ratio:.3g} times the bound away ({self.mode} mode)"

    def as_dict(self) -> dict:
        return {"variant": self.variant, "clause": self.clause, "description": self.description, "mode": self.mode,
                "matches": self.matches, "ratio": self.ratio if math.isfinite(self.ratio) else "inf",
                "ulps": self.ulps if math.isfinite(self.ulps) else "inf"}


def _describe(cls: type) -> tuple[str, str]:
    clause, _, text = (cls.__doc__ or "").strip().splitlines()[0].partition(": ")
    return clause, text.rstrip(".").replace("``", "")


def diagnose(vector: object, dtype: str, outcome: Outcome) -> Diagnosis | None:
    """The known variant closest to the candidate's observations in ``outcome``, or None if none could be compared."""
    if not outcome.observed or outcome.errors is None:
        return None  # a large vector (observations not kept) or a run that stopped at its first step
    best: Diagnosis | None = None
    for cls in CANDIDATES:
        try:
            replay = run(NumpyPortAdapter(cls), vector, dtype, (outcome.mode,), keep=True)[0]
        except Unsupported:
            continue
        if replay.error or not replay.observed:
            continue
        cmp = Comparison(dtype)
        for s, (observed, expected, errors) in enumerate(zip(outcome.observed, replay.observed, outcome.errors), 1):
            cmp.add_step(s, observed, as_state(expected), errors, outcome.scale)
        if cmp.problems and not cmp.worst:
            continue
        ratio = math.inf if cmp.problems else cmp.max_ratio
        ulps = max((w.ulps for w in cmp.worst.values()), default=0.0)
        clause, text = _describe(cls)
        found = Diagnosis(cls.__name__, clause, text, ratio, ulps, outcome.mode)
        if best is None or (found.ratio, found.ulps) < (best.ratio, best.ulps):
            best = found
    return best
