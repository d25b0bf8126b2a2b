"""Bit-for-bit comparison of two states read from candidates: a run against its twin (the same candidate on one
device, or uninterrupted), and replicas against each other.  The oracle's bound plays no part: two runs of the same
candidate that production users assume to be identical are compared exactly, and a difference is measured in ulps of
the candidate's dtype."""

from __future__ import annotations

from dataclasses import dataclass
import numpy as np

from conformance.dtypes import FORMATS, NUMPY_DTYPES
from conformance.judge.error_model import FIELDS


@dataclass
class Difference:
    """Where two states first differ, and by how much at worst."""

    tensor: str  # "a.v", or "iterations"
    ulps: float  # the largest difference of an element, in ulps of the dtype (inf for NaN against a number)
    text: str  # "3 ulps in a.v", "iterations 2 against 3"


def difference(have: dict, want: dict, dtypes: dict[str, str]) -> Difference | None:
    """The largest difference between two ``read()`` states (``Session.read`` layout), or None if bit-identical.

    Only what both expose is compared; a tensor one exposes and the other does not is a difference too."""
    if have.get("iterations") is not None and want.get("iterations") is not None \
            and int(have["iterations"]) != int(want["iterations"]):
        return Difference("iterations", float("inf"), f"iterations {have['iterations']} against {want['iterations']}")
    worst: Difference | None = None
    for name, fields in want.items():
        if name == "iterations":
            continue
        for f in FIELDS:
            a, b = (have.get(name) or {}).get(f), (fields or {}).get(f)
            if a is None and b is None:
                continue
            label = f"{name}.{f}"
            if a is None or b is None:
                return Difference(label, float("inf"), f"{label} exposed by one run only")
            if np.shape(a) != np.shape(b):
                return Difference(label, float("inf"), f"{label} has another shape")
            ulps = _ulps(np.asarray(a), np.asarray(b), dtypes[name])
            if ulps and (worst is None or ulps > worst.ulps):
                shown = "NaN or Inf against a number" if ulps == float("inf") else f"{ulps:.3g} ulps"
                worst = Difference(label, ulps, f"{shown} in {label}")
    return worst


def _ulps(a: np.ndarray, b: np.ndarray, dtype: str) -> float:
    """The largest |a - b| in ulps of ``dtype`` at the larger magnitude (0 when bit-identical, NaN equal to NaN)."""
    dt = NUMPY_DTYPES[dtype]
    a64, b64 = a.astype(dt).astype(np.float64), b.astype(dt).astype(np.float64)
    same = (a64 == b64) | (np.isnan(a64) & np.isnan(b64))
    same &= np.signbit(a64) == np.signbit(b64)  # -0 against +0 is a difference a bit-for-bit check must see
    if same.all():
        return 0.0
    x, y = a64[~same], b64[~same]
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        return float("inf")
    fmt = FORMATS[dtype]
    exponent = np.frexp(np.maximum(np.abs(x), np.abs(y)))[1]
    spacing = np.ldexp(1.0, np.maximum(exponent - 1, fmt.emin) - (fmt.p - 1))
    return float(max(np.max(np.abs(x - y) / spacing), 1.0))  # +0 against -0 counts as one ulp


def first_disagreement(replicas: list[dict], dtypes: dict[str, str]) -> str | None:
    """Which replica first differs from replica 0, and where; None when all are bit-identical."""
    for i, other in enumerate(replicas[1:], start=1):
        found = difference(other, replicas[0], dtypes)
        if found is not None:
            return f"replica {i} differs from replica 0: {found.text}"
    return None


def describe(found: Difference, step: int, label: str) -> str:
    """'not bit-identical to one device: 3 ulps in a.v from step 2'."""
    return f"not bit-identical to {label}: {found.text} from step {step}"

