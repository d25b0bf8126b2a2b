"""The comparison engine: candidate observations vs the oracle's states, under the error model.

``Comparison.add_step`` takes one step at a time (so large vectors are never
held whole) and keeps, per tensor, the element that used the largest share of
its bound, the first step out of bound, and a per-step curve of ulps used and
allowed.  ``failure_text`` renders the failure report in one fixed layout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from conformance.tolerance import bits_of_agreement, ulp
from vectors.scenarios import NUMPY_DTYPES

TENSORS = ("variable", "m", "v", "vhat")


@dataclass
class Worst:
    """The element of one tensor (over all steps) that used the largest share of its bound."""

    tensor: str  # "a.variable", "b.m", ...
    step: int  # 1-based
    index: tuple[int, ...]
    actual: float
    expected: float
    abs_err: float
    rel_err: float
    ulps: float
    ulps_allowed: float
    mismatched: tuple[int, int] = (0, 0)  # elements out of bound at this step, of all

    @property
    def ratio(self) -> float:
        """Error divided by the bound (> 1 means out of bound)."""
        if self.ulps == 0:
            return 0.0
        return math.inf if self.ulps_allowed == 0 else self.ulps / self.ulps_allowed

    def as_dict(self) -> dict:
        return {
            "tensor": self.tensor, "step": self.step, "index": list(self.index), "actual": _num(self.actual),
            "expected": _num(self.expected), "abs": _num(self.abs_err), "rel": _num(self.rel_err),
            "ulps": _num(self.ulps), "ulps_allowed": _num(self.ulps_allowed), "ratio": _num(self.ratio),
            "bits": round(bits_of_agreement(self.abs_err, self.expected), 2),
        }


def _num(x: float) -> float | str:
    x = float(x)
    return x if math.isfinite(x) else repr(x)


@dataclass
class Comparison:
    """The outcome of comparing one run with its vector, built step by step."""

    dtype: str
    worst: dict[str, Worst] = field(default_factory=dict)
    first_failing_step: int | None = None
    problems: list[str] = field(default_factory=list)  # structural: shapes, dtypes, NaN positions, iterations
    violations: list[Worst] = field(default_factory=list)  # the worst violation of each tensor at its first bad step
    curve: dict[str, list[list[float]]] = field(default_factory=dict)  # tensor -> per step [ulps used, ulps allowed]

    @property
    def passed(self) -> bool:
        return not self.problems and not self.violations

    @property
    def max_ratio(self) -> float:
        return max((w.ratio for w in self.worst.values()), default=0.0)

    def _fail(self, s: int, problem: str | None = None) -> None:
        if problem:
            self.problems.append(problem)
        self.first_failing_step = self.first_failing_step or s

    def add_step(self, s: int, observed: dict, expected: dict, bounds: dict) -> None:
        """Compare step ``s`` (1-based): ``{"iterations": n, var: {tensor: array}}`` against the oracle's state."""
        if int(observed["iterations"]) != expected["iterations"]:
            self._fail(s, f"step {s}: iterations is {observed['iterations']}, expected {expected['iterations']}")
        for name, fields in bounds.items():
            for tensor, bound in fields.items():
                want = expected[name].get(tensor)
                if want is None:
                    continue
                have = observed.get(name, {}).get(tensor)
                label = f"{name}.{tensor}"
                if have is None:
                    if tensor == "variable":
                        self._fail(s, f"step {s}: {label} missing from the candidate's output")
                    continue  # a candidate that does not expose a slot is judged on the variable alone
                self._tensor(label, s, np.asarray(have), want, bound)

    def _tensor(self, label: str, s: int, have: np.ndarray, want: np.ndarray, bound: np.ndarray) -> None:
        if any(p.startswith(f"{label}:") for p in self.problems):
            return  # one structural problem per tensor is enough
        if have.shape != want.shape:
            return self._fail(s, f"{label}: shape {list(have.shape)}, expected {list(want.shape)} (step {s})")
        if have.dtype != NUMPY_DTYPES[self.dtype]:
            return self._fail(s, f"{label}: dtype {have.dtype}, expected {self.dtype} (step {s}; ADAM-DTYPE-1)")
        have = have.astype(np.float64)
        nan_have, nan_want = np.isnan(have), np.isnan(want)
        if not np.array_equal(nan_have, nan_want):
            k = np.unravel_index(int(np.flatnonzero(nan_have != nan_want)[0]), want.shape)
            return self._fail(s, f"step {s}: {label}: NaN location mismatch at index {tuple(map(int, k))}: "
                                 f"candidate {have[k]!r}, expected {want[k]!r}")
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            diff = np.where(nan_want | ((have == want) & np.isinf(want)), 0.0, np.abs(have - want))
            spacing = ulp(want, self.dtype)
            used, allowed = diff / spacing, np.asarray(bound, dtype=np.float64) / spacing
            ratio = np.where(used == 0, 0.0, used / allowed)
        if not ratio.size:
            return
        ratio = np.where(np.isnan(ratio), np.inf, ratio)  # an error where the bound is undefined is out of bound
        k = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
        worst = Worst(label, s, tuple(map(int, k)), float(have[k]), float(want[k]), float(diff[k]),
                      float(diff[k] / abs(want[k])) if want[k] else (0.0 if diff[k] == 0 else math.inf),
                      float(used[k]), float(allowed[k]))
        self.curve.setdefault(label, []).append([_num(worst.ulps), _num(worst.ulps_allowed)])
        if label not in self.worst or worst.ratio > self.worst[label].ratio:
            self.worst[label] = worst
        if ratio[k] > 1.0:
            if not any(v.tensor == label for v in self.violations):
                worst.mismatched = (int(np.count_nonzero(ratio > 1.0)), int(ratio.size))
                self.violations.append(worst)
            self._fail(s)


def failure_text(cmp: Comparison, header: str) -> str:
    """The failure report: header, structural problems, then per tensor the worst element with its bound."""
    lines = [header]
    lines += [f"  {p}" for p in cmp.problems]
    for w in sorted(cmp.violations, key=lambda w: w.step):
        n_bad, n = w.mismatched
        lines.append(f"  {w.tensor} out of bound from step {w.step}: {n_bad} / {n} elements ({100.0 * n_bad / max(n, 1):.1f}%)")
        lines.append(f"    worst at index {w.index}: {w.actual!r} (candidate), {w.expected!r} (expected)")
        lines.append(f"    abs {w.abs_err:.3g}, rel {w.rel_err:.3g}, {w.ulps:.3g} ulps used / {w.ulps_allowed:.3g} allowed")
    return "\n".join(lines)
