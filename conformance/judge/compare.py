"""The comparison engine: candidate observations vs the oracle's states, under the error model.

``Comparison.add_step`` takes one step at a time (so large vectors are never
held whole) and keeps, per tensor, the element that used the largest share of
its bound, the first step out of bound, and a per-step curve of ulps used and
allowed.  ``failure_text`` renders the failure report in one fixed layout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from conformance.judge import compiled
from conformance.dtypes import NUMPY_DTYPES, finfo
from conformance.judge.error_model import bits_of_agreement, chunks, ulp_of


def json_number(x: float) -> float | str:
    """A float as JSON holds it: itself when finite, else its repr ('inf', 'nan')."""
    x = float(x)
    return x if math.isfinite(x) else repr(x)


def as_state(observation: dict) -> dict:
    """A candidate's (or a replay's) observation ``{"iterations", name: {field: array}}`` as a float64 state."""
    return {"iterations": observation["iterations"],
            **{n: {f: None if x is None else np.asarray(x, dtype=np.float64) for f, x in fields.items()}
               for n, fields in observation.items() if n != "iterations"}}


def first_mismatch(a: np.ndarray, b: np.ndarray) -> int | None:
    """The first flat index where two same-shaped arrays differ bit for bit in value (NaN equals NaN), or None."""
    differ = ~((a == b) | (np.isnan(a) & np.isnan(b)))
    return int(np.flatnonzero(differ)[0]) if differ.any() else None


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
    ratio: float  # the error divided by its bound: the share of the bound used (> 1: out of bound)
    mismatched: tuple[int, int] = (0, 0)  # elements out of bound at this step, of all

    def as_dict(self) -> dict:
        return {
            "tensor": self.tensor, "step": self.step, "index": list(self.index), "actual": json_number(self.actual),
            "expected": json_number(self.expected), "abs": json_number(self.abs_err), "rel": json_number(self.rel_err),
            "ulps": json_number(self.ulps), "ulps_allowed": json_number(self.ulps_allowed),
            "ratio": json_number(self.ratio),
            "bits": round(bits_of_agreement(self.abs_err, self.expected), 2),
        }


@dataclass
class Comparison:
    """The outcome of comparing one run with its vector, built step by step."""

    dtype: str  # the run's: a dtype, or "mixed"
    dtypes: dict[str, str] = field(default_factory=dict)  # a variable's own dtype (ADAM-DTYPE-2)
    worst: dict[str, Worst] = field(default_factory=dict)
    first_failing_step: int | None = None
    problems: list[str] = field(default_factory=list)  # structural: shapes, dtypes, NaN positions, iterations
    violations: list[Worst] = field(default_factory=list)  # the worst violation of each tensor at its first bad step
    curve: dict[str, list[list[float]]] = field(default_factory=dict)  # tensor -> per step [ulps used, ulps allowed]
    checked: set[str] = field(default_factory=set)  # what was compared: "iterations", "variable", "m", "v", "vhat"
    not_exposed: set[str] = field(default_factory=set)  # what the oracle has and the candidate did not show
    mistakes: list[str] = field(default_factory=list)  # common port mistakes seen (``port_mistakes``), listed first

    def dtype_of(self, label: str) -> str:
        """The dtype of the tensor ``label`` ("a.m"): its variable's own in a mixed run, the run's otherwise."""
        return self.dtypes.get(label.rsplit(".", 1)[0], self.dtype)

    def mistake(self, s: int, text: str) -> None:
        """Record a port mistake once per kind, ahead of the other problems."""
        kind = text.split(": ", 1)[1]
        if not any(m.split(": ", 1)[1] == kind for m in self.mistakes):
            self.mistakes.append(text)
            self.problems.insert(len(self.mistakes) - 1, text)

    def observability(self) -> dict[str, list[str]]:
        """Which kinds of tensor were checked, and which the candidate did not expose (they never counted)."""
        order = ("iterations", "variable", "m", "v", "vhat")
        return {"checked": [k for k in order if k in self.checked],
                "not_exposed": [k for k in order if k in self.not_exposed and k not in self.checked]}

    @property
    def passed(self) -> bool:
        return not self.problems and not self.violations

    @property
    def max_ratio(self) -> float:
        return max((w.ratio for w in self.worst.values()), default=0.0)

    def _nonfinite(self, label: str, s: int, h: np.ndarray, w: np.ndarray, x: np.ndarray, bound: Any,
                   largest: float, start: int, have: np.ndarray, want: np.ndarray) -> np.ndarray | None:
        """The ratios of a slice that holds NaN or Inf; None (and a problem recorded) for a NaN where none may be."""
        # Where the bound reaches past the largest finite value, the element is unconstrained: overflow to
        # +-Inf, and NaN from what follows, are then results the dtype's rounding can produce (in either run
        # when two candidate runs are compared).
        free = np.isfinite(x) & (bound >= largest - np.abs(x))
        nonfinite = ~np.isfinite(h) | ~np.isfinite(w)
        nan_ok = free & nonfinite
        if label.endswith(".m"):  # ADAM-UPDATE-5: m of an infinite gradient is +-Inf or NaN by operation order
            nan_ok |= np.isinf(w) & np.isnan(h)
        nan_bad = (np.isnan(h) != np.isnan(w)) & ~nan_ok
        if nan_bad.any():
            k = np.unravel_index(start + int(np.flatnonzero(nan_bad)[0]), want.shape)
            self._fail(s, f"step {s}: {label}: NaN location mismatch at index {tuple(map(int, k))}: "
                          f"candidate {float(have[k])!r}, expected {float(want[k])!r}")
            return None
        ratio = _ratio(h, w, bound, free & nonfinite, largest, np.abs(x))
        ratio[nan_ok & ~free] = 0.0  # m: NaN where the spec allows it
        return ratio

    def _fail(self, s: int, problem: str | None = None) -> None:
        if problem:
            self.problems.append(problem)
        self.first_failing_step = self.first_failing_step or s

    def check_iterations(self, s: int, observed: dict, expected: int) -> None:
        """ADAM-ITER-1 at step ``s``: the candidate's counter, when it exposes one, equals the oracle's."""
        if observed.get("iterations") is None:
            self.not_exposed.add("iterations")
        else:
            self.checked.add("iterations")
            if int(observed["iterations"]) != expected:
                self._fail(s, f"step {s}: iterations is {observed['iterations']}, expected {expected}")

    def add_step(self, s: int, observed: dict, expected: dict, errors: dict, scale: float,
                 oracle: dict | None = None) -> None:
        """Compare step ``s`` (1-based): ``{"iterations": n, var: {tensor: array}}`` against the expected state.

        ``errors`` are the error model's per-tensor e arrays along the ``oracle``'s trajectory (by default the
        expected state is the oracle's); the allowed error is ``scale * e`` (spec E-7).
        """
        oracle = expected if oracle is None else oracle
        self.check_iterations(s, observed, expected["iterations"])
        for name, fields in errors.items():
            for tensor, bound in fields.items():
                want = expected[name].get(tensor)
                if want is None:
                    continue
                have = observed.get(name, {}).get(tensor)
                label = f"{name}.{tensor}"
                if have is None:
                    if tensor == "variable":
                        self._fail(s, f"step {s}: {label} missing from the candidate's output")
                    self.not_exposed.add(tensor)  # a candidate that does not expose a slot is judged without it
                    continue
                self.checked.add(tensor)
                self._tensor(label, s, np.asarray(have), want, bound, scale, oracle[name][tensor])

    def _tensor(self, label: str, s: int, have: np.ndarray, want: np.ndarray, err: Any, scale: float,
                exact: np.ndarray) -> None:
        if not self.comparable(label, s, have, want):
            return
        err = np.asarray(err, dtype=np.float64)
        flat_err = err.reshape(-1) if err.shape == want.shape else np.full(1, float(err.reshape(-1)[0]))  # one value for all
        best, best_ratio, n_bad = 0, -1.0, 0
        done = False
        if want.size >= compiled.MIN_ELEMENTS and compiled.available(self.dtype_of(label)):  # one compiled pass; the loop below if not finite
            done, best, best_ratio, n_bad = compiled.compare_finite(have, want, err, scale)
        found = self.scan(label, s, have, want, exact, flat_err, scale, [] if done else chunks(want.size),
                          (best, best_ratio, n_bad))
        if found is not None:
            self.record(label, s, have, want, *found, scale * float(flat_err[found[0] if flat_err.size > 1 else 0]))

    def comparable(self, label: str, s: int, have: np.ndarray, want: np.ndarray) -> bool:
        """Whether a tensor is compared element by element; if not, its structural problem is recorded."""
        if any(p.startswith(f"{label}:") for p in self.problems):
            return False  # one structural problem per tensor is enough
        if have.shape != want.shape:
            self._fail(s, f"{label}: shape {list(have.shape)}, expected {list(want.shape)} (step {s})")
            return False
        if have.dtype != NUMPY_DTYPES[self.dtype_of(label)]:
            self._fail(s, f"{label}: dtype {have.dtype}, expected {self.dtype_of(label)} (step {s}; ADAM-DTYPE-1)")
            return False
        return bool(want.size)

    def scan(self, label: str, s: int, have: np.ndarray, want: np.ndarray, exact: np.ndarray, flat_err: np.ndarray,
             scale: float, parts: list[slice], found: tuple[int, float, int], err_start: int = 0) -> tuple | None:
        """The element-wise comparison over ``parts`` (slices of the flat tensors), continuing ``found``.

        ``found`` and the result are (flat index of the largest share of the bound, that share, elements out of
        bound); None when a NaN stands where none may (the problem is recorded).  ``flat_err`` holds one value for
        all elements, or the bound's e of the flat elements from ``err_start`` on.
        """
        flat = (have.reshape(-1), want.reshape(-1), exact.reshape(-1))
        largest = float(finfo(self.dtype_of(label)).max)
        best, best_ratio, n_bad = found
        for part in parts:
            h, w, x = flat[0][part].astype(np.float64), flat[1][part], flat[2][part]
            bound = scale * (flat_err[part.start - err_start:part.stop - err_start] if flat_err.size > 1 else flat_err[0])
            if np.isfinite(h).all() and np.isfinite(w).all():
                with np.errstate(invalid="ignore", divide="ignore"):
                    diff = np.abs(h - w)
                    ratio = diff / bound
                ratio[diff == 0] = 0.0
            else:
                ratio = self._nonfinite(label, s, h, w, x, bound, largest, part.start, have, want)
                if ratio is None:
                    return None
            i = int(np.argmax(ratio))
            if ratio[i] > best_ratio:
                best, best_ratio = part.start + i, float(ratio[i])
            n_bad += int(np.count_nonzero(ratio > 1.0))
        return best, best_ratio, n_bad

    def record(self, label: str, s: int, have: np.ndarray, want: np.ndarray, best: int, best_ratio: float, n_bad: int,
               allowed: float) -> None:
        """Record one tensor's step: its worst element (flat index ``best``, whose allowed error is ``allowed``),
        the curve, and a violation when ``n_bad`` elements are out of bound."""
        k = np.unravel_index(best, want.shape)
        x, y = float(have[k]), float(want[k])
        diff = 0.0 if (np.isnan(y) or (x == y and np.isinf(y))) else abs(x - y)
        spacing = ulp_of(y, self.dtype_of(label))
        worst = Worst(label, s, tuple(map(int, k)), x, y, diff, diff / abs(y) if y else (0.0 if diff == 0 else math.inf),
                      diff / spacing, allowed / spacing, best_ratio)
        self.curve.setdefault(label, []).append([json_number(worst.ulps), json_number(worst.ulps_allowed)])
        if label not in self.worst or worst.ratio > self.worst[label].ratio:
            self.worst[label] = worst
        if n_bad:
            if not any(v.tensor == label for v in self.violations):
                worst.mismatched = (n_bad, int(want.size))
                self.violations.append(worst)
            self._fail(s)


def _ratio(have: np.ndarray, want: np.ndarray, bound: Any, gone: np.ndarray, largest: float,
           exact: np.ndarray) -> np.ndarray:
    """|have - want| / bound element-wise: 0 where they agree (NaN with NaN, equal infinities); an element that is
    unconstrained and went non-finite (``gone``) uses the share of its bound needed to reach the overflow threshold."""
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        diff = np.abs(have - want)
        diff[np.isnan(want) | ((have == want) & np.isinf(want))] = 0.0
        ratio = diff / bound
        ratio[diff == 0] = 0.0
        ratio[gone] = np.clip((largest - exact[gone]) / bound[gone] if np.ndim(bound) else (largest - exact[gone]) / bound,
                              0.0, 1.0)
    ratio[np.isnan(ratio)] = np.inf  # an error where the bound is undefined is out of bound
    return ratio


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


def _same_in(dtype: str, a: Any, b: Any) -> bool:
    """Whether two states of a tensor are the same value in ``dtype`` (NaN equal to NaN)."""
    dt = NUMPY_DTYPES[dtype]
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.array_equal(np.asarray(a, dtype=np.float64).astype(dt), np.asarray(b, dtype=np.float64).astype(dt),
                                   equal_nan=True))


def _moved(dtype: str, after: Any, before: Any) -> float:
    """The share of elements whose value in ``dtype`` changed between two states."""
    dt = NUMPY_DTYPES[dtype]
    with np.errstate(over="ignore", invalid="ignore"):
        a, b = np.asarray(after, dtype=np.float64).astype(dt), np.asarray(before, dtype=np.float64).astype(dt)
        changed = (a != b) & ~(np.isnan(a.astype(np.float64)) & np.isnan(b.astype(np.float64)))
    return float(changed.mean()) if changed.size else 0.0


#: The slots whose update is affine in their previous value (m and v): what the exchange check can fit.
_AFFINE_SLOTS = ("m", "v")
#: Past this many variables whose slots are wrong, the pairwise exchange search is skipped (it is quadratic).
_EXCHANGE_SEARCH_LIMIT = 48


def _f64(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _rounding(dtype: str, *arrays: Any) -> np.ndarray:
    """A few units of ``dtype``'s rounding of the values in ``arrays``, element-wise, with the smallest normal as floor
    (a subnormal, or one flushed to zero, is that far off)."""
    return 4.0 * finfo(dtype).eps * sum(np.abs(_f64(a)) for a in arrays) + float(finfo(dtype).tiny)


def _wrong(dtype: str, have: Any, want: Any) -> bool:
    """Whether most elements of ``have`` are off ``want`` by far more than ``dtype``'s rounding."""
    have, want = _f64(have), _f64(want)
    with np.errstate(invalid="ignore"):
        off = np.abs(have - want) > 4.0 * _rounding(dtype, have, want)
    return bool(off.size) and float(off.mean()) >= 0.5


def _scaled(dtype: str, diff: Any, direction: Any, scale_of: tuple) -> bool:
    """Whether ``diff == k * direction`` element-wise for one k in [0, 1], to ``dtype``'s rounding of ``scale_of``.

    This is the signature of an affine slot update (``new = beta * old + (1 - beta) * g``) made from another
    variable's old slot or gradient; where ``direction`` is zero everywhere it asks ``diff`` to be zero (the
    variables' old slots were equal, as at a first step, and the slot is exactly the other variable's).
    """
    diff, direction, tol = _f64(diff), _f64(direction), _rounding(dtype, *scale_of)
    if not (np.isfinite(diff).all() and np.isfinite(direction).all()):
        return False
    informative = np.abs(direction) > tol
    if not informative.any():
        return bool((np.abs(diff) <= tol).all())
    if np.count_nonzero(informative) < 2:
        return False  # one element fits any k: no evidence
    k = float(np.dot(diff[informative], direction[informative]) / np.dot(direction[informative], direction[informative]))
    return 0.0 <= k <= 1.0 and bool((np.abs(diff - k * direction) <= tol).all())


def _exchanged_slots(s: int, names: list[str], before: dict, after: dict, expected_before: dict, expected: dict,
                     dtypes: dict[str, str]) -> tuple[list[str], set[str]]:
    """Variables whose m and v were updated with another variable's gradient, or from its old slots: the lines, and
    the variables they name.

    A port that binds slots to a variable's position in the call (a list of states, as a functional optimizer keeps
    them) updates a variable left out of a call, or listed in another order, with another variable's m and v.  For
    m and v (affine in their old value) that leaves a fingerprint needing no hyperparameter: x's slot taking y's
    gradient gives ``y_new_oracle - x_new = beta * (y_old - x_old)``; x's step starting from y's slot gives
    ``x_new_oracle - x_new = beta * (x_old - y_old)``.  Each exposed m and v must show the same one.
    """
    def slots(state: dict, name: str) -> dict:
        return {k: (state.get(name) or {}).get(k) for k in _AFFINE_SLOTS}

    def wrong(x: str) -> bool:
        have, want = slots(after, x), slots(expected, x)
        return any(have[k] is not None and want[k] is not None and np.shape(have[k]) == np.shape(want[k])
                   and _wrong(dtypes[x], have[k], want[k]) for k in _AFFINE_SLOTS)

    suspects = [x for x in names if wrong(x)]
    if len(suspects) > _EXCHANGE_SEARCH_LIMIT:
        return [], set()
    took_gradient: dict[str, tuple[str, list[str]]] = {}  # x -> (y, slots): x's slots hold y's step
    started_from: dict[str, tuple[str, list[str]]] = {}  # x -> (y, slots): x's step started from y's slots
    for x in suspects:
        dtype = dtypes[x]
        for y in names:
            if y == x or dtypes[y] != dtype:
                continue
            have, had, want_x, want_y = slots(after, x), slots(before, x), slots(expected, x), slots(expected, y)
            had_y, was_x, was_y = slots(before, y), slots(expected_before, x), slots(expected_before, y)
            fields = [k for k in _AFFINE_SLOTS if all(a is not None and np.shape(a) == np.shape(have[k]) for a in
                                                     (have[k], had[k], want_x[k], want_y[k], had_y[k], was_x[k], was_y[k]))]
            # x's slots were updated (they changed), and the oracle's slots of x and y differ: else nothing tells
            # an exchange apart from a slot left alone or from a correct one.
            if not fields or any(_same_in(dtype, have[k], had[k]) for k in fields) \
                    or not any(_wrong(dtype, want_y[k], want_x[k]) for k in fields):
                continue
            # Each form needs the step whose slot it names to have happened in the oracle (a gradient).
            if all(_moved(dtype, want_y[k], was_y[k]) > 0 and _scaled(
                    dtype, _f64(want_y[k]) - _f64(have[k]), _f64(was_y[k]) - _f64(had[k]),
                    (want_y[k], have[k], was_y[k], had[k])) for k in fields):
                took_gradient[x] = (y, fields)
                break
            if all(_moved(dtype, want_x[k], was_x[k]) > 0 and _scaled(
                    dtype, _f64(want_x[k]) - _f64(have[k]), _f64(was_x[k]) - _f64(had_y[k]),
                    (want_x[k], have[k], was_x[k], had_y[k])) for k in fields):
                started_from[x] = (y, fields)
                break
    lines, named = [], set()
    for found, how in ((took_gradient, "updated with {}'s gradient"), (started_from, "updated from {}'s slots")):
        for x, (y, fields) in found.items():
            if x in named:
                continue
            what = f"{_listed(x, fields)} {'was' if len(fields) == 1 else 'were'} {how.format(y)}"
            if found.get(y, ("",))[0] == x:
                lines.append(f"step {s}: slots of {x} and {y} exchanged ({what}, {y}'s with {x}'s): slots bound by "
                             "position in the call, not by variable (ADAM-API-SLOTS-2, ADAM-MULTI-1)")
                named |= {x, y}
            else:
                lines.append(f"step {s}: {what}: slots bound by position in the call, not by variable "
                             "(ADAM-API-SLOTS-2, ADAM-MULTI-1)")
                named.add(x)
    return lines, named


def _took_the_step(dtype: str, have: Any, had: Any, want: Any, want_before: Any) -> bool:
    """Whether a variable moved as the oracle's did: at nine in ten of the elements the oracle moved, the candidate's
    value is the oracle's in ``dtype`` or within half the oracle's step of it."""
    dt = NUMPY_DTYPES[dtype]
    have, had, want, want_before = _f64(have), _f64(had), _f64(want), _f64(want_before)
    with np.errstate(over="ignore", invalid="ignore"):
        moved = want.astype(dt) != want_before.astype(dt)
        same = have.astype(dt) == want.astype(dt)
        near = np.abs(have - want) <= 0.5 * np.abs(want - want_before)
    return bool(moved.any()) and not _same_in(dtype, have, had) and float((same | near)[moved].mean()) >= 0.9


def _clearly_moved(dtype: str, after: Any, before: Any) -> float:
    """The share of elements that moved by more than two units in the last place of ``dtype``: a step that no
    correct port's rounding loses (a smaller one may round to nothing in the candidate and not in the oracle)."""
    a, b = _f64(after), _f64(before)
    with np.errstate(invalid="ignore"):
        far = np.abs(a - b) > 2.0 * float(finfo(dtype).eps) * np.maximum(np.abs(a), np.abs(b)) + float(finfo(dtype).tiny)
    return float(far.mean()) if far.size else 0.0


def _from_zero_slots(old: dict, new: dict) -> dict:
    """``old`` with a zero slot wherever ``new`` has one and ``old`` has no entry: slots start at zero
    (ADAM-API-SLOTS-2), and the state before a variable's first step (the oracle's start) lists none."""
    out = dict(old)
    for name, fields in new.items():
        then = old.get(name)
        if name != "iterations" and isinstance(fields, dict) and isinstance(then, dict):
            out[name] = {**{k: np.zeros(np.shape(x)) for k, x in fields.items() if x is not None and k not in then}, **then}
    return out


def _listed(name: str, fields: list[str]) -> str:
    """``a.m`` / ``a.m and a.v`` / ``a.variable, a.m and a.v``."""
    parts = [f"{name}.{f}" for f in fields]
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"


def _variable_mistakes(s: int, name: str, have: dict, had: dict, want: dict, want_before: dict, dtype: str,
                       has_gradient: bool, exchanged: bool) -> list[str]:
    """The mistakes one variable shows at step ``s``: its candidate state ``had`` -> ``have``, the oracle's
    ``want_before`` -> ``want``.  Where its slots were ``exchanged`` with another variable's (named before, by
    ``_exchanged_slots``), that explains what they did: no other slot hint is given."""
    out = []
    # The slots the candidate shows at both ends of the step, and which of them stayed, or moved, against the oracle.
    seen = [k for k in ("m", "v", "vhat") if all(x is not None for x in (have.get(k), had.get(k), want.get(k),
                                                                        want_before.get(k)))
            and np.shape(have[k]) == np.shape(had[k])]
    oracle_moved = {k: _moved(dtype, want[k], want_before[k]) for k in seen}
    stayed = [k for k in seen if _same_in(dtype, have[k], had[k]) and oracle_moved[k] >= 0.5]
    strayed = [k for k in seen if not _same_in(dtype, have[k], had[k]) and oracle_moved[k] == 0.0]
    followed = [k for k in seen if not _same_in(dtype, have[k], had[k]) and oracle_moved[k] > 0.0]
    var, var_before = have.get("variable"), had.get("variable")
    if var is None or var_before is None or np.shape(var) != np.shape(var_before):
        return out
    unchanged = _same_in(dtype, var, var_before)
    if not has_gradient and not unchanged and _moved(dtype, want["variable"], want_before["variable"]) == 0.0:
        out.append(f"step {s}: {name}.variable changed at a step whose gradient was None or absent: such a "
                   "variable is left alone (ADAM-ITER-2)")
    elif not has_gradient and unchanged and strayed and not exchanged:
        out.append(f"step {s}: {_listed(name, strayed)} changed at a step whose gradient was None or absent "
                   f"({name}.variable did not): such a variable's slots are left alone too (ADAM-ITER-2)")
    elif has_gradient and unchanged and _clearly_moved(dtype, want["variable"], want_before["variable"]) >= 0.5:
        if seen and stayed == seen:  # nothing of the variable moved: the whole update was lost
            out.append(f"step {s}: {_listed(name, ['variable', *seen])} did not change although the oracle's did: "
                       "the update was computed on a copy and discarded (e.g. a contiguous temporary of a strided "
                       "variable), or skipped (ADAM-UPDATE-4, ADAM-SHAPE-1)")
        elif followed:  # the slots took the step: the variable's part of it was lost, or too small to show
            out.append(f"step {s}: {name}.variable did not change although the oracle's did and "
                       f"{_listed(name, followed)} moved: the variable's update was written to a copy (e.g. through "
                       "a reshape of a strided variable) or is too small to show (ADAM-UPDATE-4, ADAM-SHAPE-1)")
        else:
            out.append(f"step {s}: {name}.variable did not change although the oracle's did: apply_gradients must "
                       "update every variable of the call in place, not rebind it or skip it (ADAM-UPDATE-4, "
                       "ADAM-SHAPE-1)")
    elif stayed and not followed and not exchanged and _took_the_step(dtype, var, var_before, want["variable"], want_before["variable"]):
        # The step was made with the right slots (the variable shows it), yet get_slot shows the old ones.
        out.append(f"step {s}: {_listed(name, stayed)} did not change although {name}.variable took the oracle's "
                   "step: get_slot returns a copy, not the slot (ADAM-API-SLOTS-2)")
    return out


def port_mistakes(s: int, before: dict, after: dict, expected_before: dict, expected: dict, grads: dict,
                  dtypes: dict[str, str]) -> list[str]:
    """The common port mistakes visible in one step, as structural lines naming the clause they break.

    ``before`` and ``after`` are the candidate's states around step ``s`` (1-based), ``expected_before`` and
    ``expected`` the oracle's; ``dtypes`` maps every variable to its dtype.  Each mistake is named only where these
    observations show it, and its line says what was seen: a hint must never fire on a correct port.
    """
    out = []
    before, expected_before = _from_zero_slots(before, after), _from_zero_slots(expected_before, expected)
    it_before, it_after = before.get("iterations"), after.get("iterations")
    if it_before is not None and it_after is not None and int(it_after) == int(it_before) \
            and expected["iterations"] != expected_before["iterations"]:
        out.append(f"step {s}: iterations did not advance (still {int(it_after)}): it counts apply_gradients calls (ADAM-ITER-1)")
    names = [n for n in expected if n != "iterations" and n in expected_before]
    exchanged, involved = _exchanged_slots(s, names, before, after, expected_before, expected, dtypes)
    out += exchanged
    for name in names:
        have, want = after.get(name) or {}, expected[name]
        out += _variable_mistakes(s, name, have, before.get(name) or {}, want, expected_before[name], dtypes[name],
                                  grads.get(name) is not None, name in involved)
        m, v, want_m, want_v = have.get("m"), have.get("v"), want.get("m"), want.get("v")
        if all(x is not None for x in (m, v, want_m, want_v)) and np.shape(m) == np.shape(want_m) \
                and not np.allclose(want_m, want_v) and np.allclose(m, want_v, rtol=1e-2) and np.allclose(v, want_m, rtol=1e-2):
            out.append(f"step {s}: {name}.m holds v and {name}.v holds m: the slots are swapped (ADAM-API-SLOTS-1)")
    return out
