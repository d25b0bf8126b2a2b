"""The comparison engine: candidate trajectory vs oracle trajectory under the error model.

One function, ``compare_trajectory``, returns a ``Comparison``: the worst
element of every tensor (abs, rel, ulps used / allowed), the first step out
of bound, and the failure text in one fixed layout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from conformance.tolerance import bits_of_agreement, ulp

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
    """The outcome of comparing one run with its vector."""

    worst: dict[str, Worst] = field(default_factory=dict)
    first_failing_step: int | None = None
    problems: list[str] = field(default_factory=list)  # structural: shapes, NaN positions, iterations, missing tensors
    violations: list[Worst] = field(default_factory=list)  # the worst violation of each tensor at its first bad step

    @property
    def passed(self) -> bool:
        return not self.problems and not self.violations

    @property
    def max_ratio(self) -> float:
        return max((w.ratio for w in self.worst.values()), default=0.0)


def compare_trajectory(observed: list[dict], expected: tuple[dict, ...], bounds: list[dict], dtype: str) -> Comparison:
    """Compare per-step observations ``{"iterations": n, var: {tensor: array}}`` with the oracle's."""
    result = Comparison()
    for s, (obs, exp, bnd) in enumerate(zip(observed, expected, bounds), start=1):
        if int(obs["iterations"]) != exp["iterations"]:
            result.problems.append(f"step {s}: iterations is {obs['iterations']}, expected {exp['iterations']}")
            result.first_failing_step = result.first_failing_step or s
        for name, fields in bnd.items():
            for tensor, bound in fields.items():
                want = exp[name].get(tensor)
                if want is None:
                    continue
                have = obs.get(name, {}).get(tensor)
                label = f"{name}.{tensor}"
                if have is None:
                    if tensor == "variable":
                        result.problems.append(f"step {s}: {label} missing from the candidate's output")
                    continue  # a candidate that does not expose a slot is judged on the variable alone
                bad = _compare_tensor(result, label, s, np.asarray(have, dtype=np.float64), want, bound, dtype)
                if bad:
                    result.first_failing_step = result.first_failing_step or s
    return result


def _compare_tensor(result: Comparison, label: str, s: int, have: np.ndarray, want: np.ndarray,
                    bound: np.ndarray, dtype: str) -> bool:
    if have.shape != want.shape:
        if not any(p.startswith(f"{label}:") for p in result.problems):
            result.problems.append(f"{label}: shape {list(have.shape)}, expected {list(want.shape)} (step {s})")
        return True
    nan_have, nan_want = np.isnan(have), np.isnan(want)
    if not np.array_equal(nan_have, nan_want):
        k = np.unravel_index(int(np.flatnonzero(nan_have != nan_want)[0]), want.shape)
        result.problems.append(f"step {s}: {label}: NaN location mismatch at index {tuple(map(int, k))}: "
                               f"candidate {have[k]!r}, expected {want[k]!r}")
        return True
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.where(nan_want, 0.0, np.abs(have - want))
        diff = np.where(np.isinf(want) & (have == want), 0.0, diff)
        spacing = ulp(want, dtype)
        used, allowed = diff / spacing, np.asarray(bound, dtype=np.float64) / spacing
        ratio = np.where(used == 0, 0.0, used / allowed)
    k = np.unravel_index(int(np.nanargmax(ratio)), ratio.shape) if ratio.size else ()
    if not ratio.size:
        return False
    worst = Worst(label, s, tuple(map(int, k)), float(have[k]), float(want[k]), float(diff[k]),
                  float(diff[k] / abs(want[k])) if want[k] else (0.0 if diff[k] == 0 else math.inf),
                  float(used[k]), float(allowed[k]))
    if label not in result.worst or worst.ratio > result.worst[label].ratio:
        result.worst[label] = worst
    out = bool(ratio[k] > 1.0)
    if out and not any(v.tensor == label for v in result.violations):
        result.violations.append(worst)
        n_bad = int(np.sum(ratio > 1.0))
        worst.mismatched = (n_bad, int(ratio.size))  # type: ignore[attr-defined]
    return out


def failure_text(cmp: Comparison, header: str) -> str:
    """The failure report: header, structural problems, then per tensor the worst element with its bound."""
    lines = [header]
    lines += [f"  {p}" for p in cmp.problems]
    for w in sorted(cmp.violations, key=lambda w: w.step):
        n_bad, n = getattr(w, "mismatched", (1, 1))
        lines.append(f"  {w.tensor} out of bound from step {w.step}: {n_bad} / {n} elements ({100.0 * n_bad / n:.1f}%)")
        lines.append(f"    worst at index {w.index}: {w.actual!r} (candidate), {w.expected!r} (expected)")
        lines.append(f"    abs {w.abs_err:.3g}, rel {w.rel_err:.3g}, {w.ulps:.3g} ulps used / {w.ulps_allowed:.3g} allowed")
    return "\n".join(lines)
