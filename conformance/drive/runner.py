"""Drive one candidate through one vector, in one or both modes, comparing step by step with the oracle.

The harness owns the step counter.  A callable hyperparameter returns the value
of the current step however often it is called, and records the steps at
which it was called, so a candidate that freezes or ignores it fails
(ADAM-HYPER-1) instead of passing vacuously.

Modes (spec E): in **trajectory** mode the candidate runs free and the bound
grows with the steps; in **single-step** mode the candidate is given the
oracle's state (rounded to its dtype) before every step, so no error
accumulates and the per-step bound stays tight.

What the candidate does not implement (it raises ``NotImplementedError``, or
the adapter ``Unsupported``) makes the mode that needs it unsupported, never
failed: a port that cannot load a state is judged in trajectory mode alone.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np

from conformance.judge import compiled
from conformance.drive import large
from conformance.errors import Unsupported
from conformance.adapters.base import Adapter
from conformance.judge.compare import Comparison, port_mistakes
from conformance.dtypes import MIXED, NUMPY_DTYPES, variable_dtypes
from conformance.errors import NOT_IMPLEMENTED, CandidateError, first_line, not_implemented
from conformance.features import Feature
from conformance.inputs import Clock, RunSpec, StepCallable, StepSchedule
from conformance.load.vector import Vector
from conformance.judge.error_model import ErrorModel, MixedErrorModel

MODES = ("trajectory", "single-step")
#: Observations and bounds of vectors up to this many elements are kept, for the diagnosis.
KEEP_LIMIT = 100_000


@dataclass
class Outcome:
    """One mode's run of one vector: the comparison, or the error that stopped it."""

    mode: str
    comparison: Comparison
    error: str | None = None  # the candidate raised, hung, or its state could not be set
    error_step: int | None = None
    liveness: list[str] = field(default_factory=list)  # callables that were not called at some step
    candidate_seconds: float = 0.0  # inside the candidate (building it, stepping, loading and reading state)
    scale: float = 1.0  # allowed error = scale * model error (spec E-7)
    observed: list[dict] | None = None  # kept for small vectors (diagnosis)
    errors: list[dict] | None = None  # the error model's e per step, kept with the observations
    unsupported: str | None = None  # this mode could not run: what the candidate does not implement

    @property
    def passed(self) -> bool:
        return self.error is None and self.unsupported is None and not self.liveness and self.comparison.passed

    @property
    def first_failing_step(self) -> int | None:
        steps = [x for x in (self.error_step, self.comparison.first_failing_step) if x is not None]
        return min(steps) if steps else None  # 0: the candidate could not be built


def hyper_inputs(vector: Vector, clock: Clock) -> dict[str, Any]:
    """The hyperparameter objects handed to the candidate (constants, harness callables, a schedule)."""
    out: dict[str, Any] = {}
    for name, spec in vector.record["hyperparameters"].items():
        if isinstance(spec, dict) and "callable" in spec:
            out[name] = StepCallable(name, [float(x) for x in spec["callable"]], clock)
        elif isinstance(spec, dict):
            out[name] = StepSchedule([float(x) for x in spec["schedule"]])
        else:
            out[name] = float(spec)
    return out


def _same(read: dict, loaded: dict, dtypes: dict[str, str]) -> str | None:
    """What differs between a state read back from the candidate and the (float64) state just loaded, or None."""
    if read["iterations"] is not None and int(read["iterations"]) != loaded["iterations"]:
        return f"iterations reads back as {read['iterations']}, {loaded['iterations']} was set"
    for name, fields in loaded.items():
        if name == "iterations":
            continue
        dtype = dtypes[name]
        dt = NUMPY_DTYPES[dtype]
        for f, want in fields.items():
            have = read.get(name, {}).get(f)
            if want is None or have is None:
                continue
            if np.shape(have) != want.shape:
                return f"{name}.{f} reads back different from what was set"
            if want.size >= compiled.MIN_ELEMENTS and compiled.available(dtype):  # one pass, no full-size copies
                if not compiled.same_in(np.asarray(have), want, dtype):
                    return f"{name}.{f} reads back different from what was set"
                continue
            with np.errstate(over="ignore"):
                held = want.astype(dt)  # what the candidate's dtype holds of the oracle's value
            if not np.array_equal(np.asarray(have).astype(dt), held, equal_nan=True):
                return f"{name}.{f} reads back different from what was set"
    return None


@dataclass
class _Lane:
    """One mode's candidate session, error model and outcome, stepped in lockstep with the others."""

    spec: RunSpec
    model: ErrorModel | MixedErrorModel
    outcome: Outcome
    session: Any = None


def run(adapter: Adapter, vector: Vector, dtype: str, modes: tuple[str, ...] = ("trajectory",),
        keep: bool | None = None, on_step: Callable[[int], None] | None = None) -> list[Outcome]:
    """Run every step of ``vector`` on the candidate in ``dtype``, once per mode, over one pass of the oracle.

    Raises Unsupported (what the candidate cannot express, or does not implement in any mode) and VectorError
    (a broken large vector).
    """
    if (dtype == MIXED) != (MIXED in vector.dtypes):
        raise ValueError(f"{vector.id} runs in {', '.join(vector.dtypes)}: not in {dtype}")
    reason = adapter.unsupported(vector, dtype)
    if reason:
        raise Unsupported(reason)
    missing = adapter.missing()
    keep = vector.size <= KEEP_LIMIT if keep is None else keep
    ftz = {d: adapter.flush_to_zero(d) for d in {*variable_dtypes(vector.record, dtype).values(), dtype} - {MIXED}}
    if large.takes(vector, dtype, keep):  # large vectors: one pass per step, in little memory (conformance/drive/large.py)
        lanes = [_lane(vector, dtype, mode, ftz, keep, {}) for mode in modes]  # the driver makes the initial values
        large.drive(adapter, vector, dtype, lanes, missing, on_step, _begin, _step)
        return _finish(adapter, vector, lanes)
    initial = vector.initial()
    made: dict[int, dict] = {}

    def gradients(s: int) -> dict:
        """Step s's gradients, made once for the oracle and every lane (large ones come from generators)."""
        if s not in made:
            made.clear()
            made[s] = vector.gradients(s)
        return made[s]

    lanes = [_lane(vector, dtype, mode, ftz, keep, initial) for mode in modes]
    for lane in lanes:
        _begin(adapter, lane, missing)
    start = {"iterations": 0, **{n: {"variable": v} for n, v in initial.items()}}
    last = {id(lane): start for lane in lanes}  # each lane's state before the step, for port_mistakes
    previous: dict | None = None
    for s, expected in enumerate(vector.states(initial, gradients)):
        if on_step is not None:
            on_step(s + 1)  # --isolate: the step a crash happened at
        live = [lane for lane in lanes if lane.outcome.error is None and lane.outcome.unsupported is None]
        if not live:
            break
        grads = gradients(s)
        for lane in live:
            lane.spec.clock.step = s
            observed = _step(lane, grads, s, previous if lane.outcome.mode == "single-step" else None)
            if observed is None:
                continue
            if Feature.SLOTS in missing:  # declared absent: judged on the variable and iterations alone
                observed = {n: (x if n == "iterations" else {"variable": x["variable"]}) for n, x in observed.items()}
            errors = lane.model.step(s, grads, expected)
            cmp = lane.outcome.comparison
            cmp.add_step(s + 1, observed, expected, errors, lane.model.scale)
            if cmp.first_failing_step is not None:  # named only to explain a failure the numbers already show
                before = last[id(lane)] if lane.outcome.mode == "trajectory" else previous or start
                for line in port_mistakes(s + 1, before, observed, previous or start, expected, grads, lane.spec.dtypes):
                    cmp.mistake(s + 1, line)
            last[id(lane)] = observed
            if keep:
                lane.outcome.observed.append(observed)
                lane.outcome.errors.append(errors)
        previous = expected
    return _finish(adapter, vector, lanes)


def _lane(vector: Vector, dtype: str, mode: str, ftz: dict[str, bool], keep: bool, initial: dict[str, np.ndarray]) -> _Lane:
    """One mode's lane, its candidate not built yet."""
    clock, dtypes = Clock(), variable_dtypes(vector.record, dtype)
    spec = RunSpec(hyper=hyper_inputs(vector, clock), amsgrad=vector.record["amsgrad"],
                   defaults=vector.record["construct"] == "defaults", dtype=dtype, variables=initial, clock=clock,
                   non_contiguous="non-contiguous" in vector.record["flags"], dtypes=dtypes)
    carried = mode == "trajectory"
    if dtype == MIXED:
        model: Any = MixedErrorModel(vector, dtypes, carried=carried, ftz=ftz, initial=initial)
    else:
        model = ErrorModel(vector, dtype, carried=carried, ftz=ftz[dtype], initial=initial, reuse=not keep)
    return _Lane(spec, model, Outcome(mode, Comparison(dtype, dtypes), scale=model.scale,
                                      observed=[] if keep else None, errors=[] if keep else None))


def _begin(adapter: Adapter, lane: _Lane, missing: dict) -> None:
    """Build a lane's candidate from ``lane.spec`` (timed); what it lacks, or an error, ends the lane here."""
    if lane.outcome.mode == "single-step" and Feature.STATE_LOADING in missing:
        lane.outcome.unsupported = missing[Feature.STATE_LOADING]
        return
    with _timed(lane.outcome):
        try:
            lane.session = adapter.start(lane.spec)
        except NOT_IMPLEMENTED as exc:
            lane.outcome.unsupported = not_implemented(exc, " while being built")
        except Exception as exc:  # noqa: BLE001 - whatever the candidate raises is reported
            lane.outcome.error, lane.outcome.error_step = str(CandidateError(0, exc)), 0


def _finish(adapter: Adapter, vector: Vector, lanes: list[_Lane]) -> list[Outcome]:
    """The lanes' outcomes, with the liveness of their callables; Unsupported if no mode could run."""
    for lane in lanes:
        if lane.outcome.error is None and lane.outcome.unsupported is None and adapter.observes_liveness:
            lane.outcome.liveness = _liveness(lane.spec.hyper, len(vector.steps))
    if all(lane.outcome.unsupported for lane in lanes):
        raise Unsupported(lanes[0].outcome.unsupported)
    return [lane.outcome for lane in lanes]


@contextmanager
def _timed(outcome: Outcome) -> Iterator[None]:
    """Adds the time spent in a block to an outcome's candidate_seconds."""
    start = time.perf_counter()
    try:
        yield
    finally:
        outcome.candidate_seconds += time.perf_counter() - start


def _step(lane: _Lane, grads: dict, s: int, loaded: dict | None) -> dict | None:
    """One call of the candidate (after loading the oracle's state in single-step mode); None if it failed."""
    out = lane.outcome
    if loaded is not None:
        try:
            with _timed(out), np.errstate(over="ignore"):  # a value past the dtype's range is loaded as +-Inf
                lane.session.load(loaded)
                read_back = lane.session.read()
            problem = _same(read_back, loaded, lane.spec.dtypes)  # the kit's check: not counted as the candidate's time
        except NOT_IMPLEMENTED as exc:
            out.unsupported = "single-step mode: " + not_implemented(exc, " to load a state")
            return None
        except Exception as exc:  # noqa: BLE001
            problem = f"{type(exc).__name__}: {first_line(exc)}"
        if problem:
            out.error, out.error_step = f"could not set the oracle's state before step {s + 1}: {problem}", s + 1
            return None
    try:
        with _timed(out):
            lane.session.apply(grads, s)
            return lane.session.read()
    except NOT_IMPLEMENTED as exc:
        if out.comparison.passed:  # a part it lacks; after a divergence it stays a failure
            out.unsupported = not_implemented(exc, f" at step {s + 1}")
            return None
        out.error, out.error_step = str(CandidateError(s + 1, exc)), s + 1
    except Exception as exc:  # noqa: BLE001 - whatever the candidate raises is reported, with its step
        out.error, out.error_step = str(CandidateError(s + 1, exc)), s + 1
    return None


def _liveness(hyper: dict[str, Any], n_steps: int) -> list[str]:
    problems = []
    for name, obj in hyper.items():
        if isinstance(obj, StepCallable):
            missing = sorted(set(range(n_steps)) - obj.called_at)
            if missing:
                problems.append(f"callable {name} was not called at step(s) {[m + 1 for m in missing]} "
                                "(frozen or ignored: ADAM-HYPER-1)")
        if isinstance(obj, StepSchedule) and sorted(set(obj.steps_seen)) != list(range(n_steps)):
            problems.append(f"the learning-rate schedule was called with steps {sorted(set(obj.steps_seen))}, "
                            f"expected 0..{n_steps - 1} (ADAM-HYPER-3)")
    return problems
