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
from typing import Any, Callable, Iterator, Protocol

import numpy as np

from conformance.judge import compiled, identical
from conformance.drive import large
from conformance.errors import Unsupported
from conformance.adapters.base import Adapter
from conformance.judge.compare import Comparison, port_mistakes
from conformance.dtypes import MIXED, NUMPY_DTYPES
from conformance.errors import NOT_IMPLEMENTED, CandidateError, first_line, not_implemented
from conformance.features import Feature
from conformance.inputs import RunSpec, StepCallable, StepSchedule
from conformance.load.vector import Vector
from conformance.judge.error_model import ErrorModel, MixedErrorModel

MODES = ("trajectory", "single-step")
#: Observations and bounds of vectors up to this many elements are kept, for the diagnosis: the `kernels` family
#: (up to 327,681 elements over 2 steps, about 25 MB kept) is replayed; the `scale` vectors are not.
KEEP_LIMIT = 400_000


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
    #: How the run differs, bit for bit, from its twin's (``Adapter.twin``: the same candidate on one device, or
    #: uninterrupted), "not bit-identical to one device: 3 ulps in a.v from step 2"; None when identical or no twin.
    twin: str | None = None
    twin_binding: bool = False  # a difference from the twin fails the item (a resumed run), or is only reported
    replicas: str | None = None  # the first disagreement between the candidate's replicas (``Session.replicas``)

    @property
    def passed(self) -> bool:
        return (self.error is None and self.unsupported is None and not self.liveness and self.comparison.passed
                and self.replicas is None and not (self.twin_binding and self.twin))

    @property
    def first_failing_step(self) -> int | None:
        steps = [x for x in (self.error_step, self.comparison.first_failing_step) if x is not None]
        return min(steps) if steps else None  # 0: the candidate could not be built


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
    twin: Any = None  # the twin's session (trajectory mode, when the adapter has a twin)
    twin_worst: float = 0.0  # the largest difference from the twin so far, in ulps
    twin_from: int | None = None  # the first step at which it differs


def run(adapter: Adapter, vector: Vector, dtype: str, modes: tuple[str, ...] = ("trajectory",),
        keep: bool | None = None, on_step: Callable[[int], None] | None = None,
        profile: tuple[str, ...] = ()) -> list[Outcome]:
    """Run every step of ``vector`` on the candidate in ``dtype``, once per mode, over one pass of the oracle.

    ``profile``: deviations (``reference.variants``) the candidate declares: it is judged against the spec with
    them (``deviated_states``), under the same error model.

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
    ftz = {d: adapter.flush_to_zero(d) for d in {*vector.variable_dtypes(dtype).values(), dtype} - {MIXED}}
    if large.takes(vector, dtype, keep) and not profile:  # stored as digests: one pass per step, in little memory (drive/large.py)
        lanes = [_lane(vector, dtype, mode, ftz, keep, {}) for mode in modes]  # the judge makes the initial values
        large.take_pool()
        for group in large.groups(vector, lanes):
            _loop(adapter, group, missing, on_step, large.SlicedJudge(vector, group))
            for lane in group:
                lane.session = None  # the candidate's memory goes before the next one is built
        large.trim()
        return _finish(adapter, vector, lanes)
    initial = vector.initial()
    lanes = [_lane(vector, dtype, mode, ftz, keep, initial) for mode in modes]
    hidden = _hidden_state(profile)
    for lane in lanes:
        if lane.outcome.mode == "single-step" and hidden:
            lane.outcome.unsupported = hidden  # the spec's state cannot carry it: trajectory mode alone judges
    _loop(adapter, lanes, missing, on_step, _ReadableJudge(vector, initial, keep, profile))
    return _finish(adapter, vector, lanes)


class Judge(Protocol):
    """The oracle's side of ``_loop``, chosen per vector: the readable one (``_ReadableJudge``) or the one that
    works slice by slice on large vectors (``large.SlicedJudge``).  ``tests/test_large.py`` proves the two give the
    same outcomes bit for bit."""

    steps: int  # the vector's steps

    def initial(self) -> dict[str, np.ndarray]:
        """The initial values every lane's candidate is built from (float64; the candidate copies them)."""

    def idle(self, lanes: list[_Lane]) -> bool:
        """Whether nothing is left to do once the candidates are built (none could be, and nothing to verify)."""

    def gradients(self, s: int) -> dict[str, Any]:
        """Step ``s``'s gradients, made once for the oracle and every lane."""

    def loaded(self, s: int) -> dict | None:
        """The oracle's state before step ``s``, given to a single-step lane before it steps (None at the first)."""

    def step(self, s: int, grads: dict[str, Any], observed: list[tuple[_Lane, dict]]) -> None:
        """The oracle's step ``s``, then every observed lane's bound and comparison at it (recorded in its outcome)."""

    def before(self, s: int) -> dict:
        """The oracle's state before step ``s`` (after ``step``: for naming port mistakes)."""

    def after(self) -> dict:
        """The oracle's state after the step just judged."""

    def finish(self) -> None:
        """Every step ran: what the run verified of the vector is remembered."""


def _loop(adapter: Adapter, lanes: list[_Lane], missing: dict, on_step: Callable[[int], None] | None,
          judge: Judge) -> None:
    """The one driver loop: build each lane's candidate, then step every live lane in lockstep with the oracle."""
    initial = judge.initial()
    if on_step is not None:
        on_step(0)  # --isolate: a crash from here on is in building the candidate
    for lane in lanes:
        lane.spec.variables = initial
        _begin(adapter, lane, missing)
    if judge.idle(lanes):
        return
    last: dict[int, dict] = {}  # a trajectory lane's previous observation, for port_mistakes
    for s in range(judge.steps):
        if on_step is not None:
            on_step(s + 1)  # --isolate: the step a crash happened at
        live = [lane for lane in lanes if lane.outcome.error is None and lane.outcome.unsupported is None]
        grads = judge.gradients(s)
        observed = []
        for lane in live:
            lane.spec.clock.step = s
            obs = _step(lane, grads, s, judge.loaded(s) if lane.outcome.mode == "single-step" else None)
            if obs is None:
                continue
            if lane.twin is not None:
                _twin_step(adapter, lane, grads, s, obs)
            if Feature.SLOTS in missing:  # declared absent: judged on the variable and iterations alone
                obs = {n: (x if n == "iterations" else {"variable": x["variable"]}) for n, x in obs.items()}
            observed.append((lane, obs))
        judge.step(s, grads, observed)  # with no lane left, the oracle's state is still made and checked
        if not live:
            return
        for lane, obs in observed:
            cmp = lane.outcome.comparison
            if cmp.first_failing_step is not None:  # named only to explain a failure the numbers already show
                before = judge.before(s)
                had = last.get(id(lane), before) if lane.outcome.mode == "trajectory" else before
                for line in port_mistakes(s + 1, had, obs, before, judge.after(), grads, lane.spec.dtypes):
                    cmp.mistake(s + 1, line)
            last[id(lane)] = obs
    judge.finish()


class _ReadableJudge:
    """The readable oracle and error model on whole arrays (``Vector.states``, ``ErrorModel.step``,
    ``Comparison.add_step``); ``keep`` keeps the observations and bounds for the diagnosis."""

    def __init__(self, vector: Vector, initial: dict[str, np.ndarray], keep: bool, profile: tuple[str, ...] = ()) -> None:
        self.vector, self.keep, self.steps = vector, keep, len(vector.steps)
        self.start = {"iterations": 0, **{n: {"variable": v} for n, v in initial.items()}}
        self._initial, self._made = initial, {}
        self.previous: dict | None = None  # the oracle's state before the step
        self.expected: dict | None = None  # and after it
        self.states = (deviated_states(vector, profile, initial, self.gradients) if profile
                       else vector.states(initial, self.gradients))

    def initial(self) -> dict[str, np.ndarray]:
        return self._initial

    def idle(self, lanes: list[_Lane]) -> bool:
        return False

    def gradients(self, s: int) -> dict[str, Any]:
        if s not in self._made:
            self._made.clear()
            self._made[s] = self.vector.gradients(s)
        return self._made[s]

    def loaded(self, s: int) -> dict | None:
        return self.expected

    def step(self, s: int, grads: dict[str, Any], observed: list[tuple[_Lane, dict]]) -> None:
        self.previous, self.expected = self.expected, next(self.states)
        for lane, obs in observed:
            errors = lane.model.step(s, grads, self.expected)
            lane.outcome.comparison.add_step(s + 1, obs, self.expected, errors, lane.model.scale)
            if self.keep:
                lane.outcome.observed.append(obs)
                lane.outcome.errors.append(errors)

    def before(self, s: int) -> dict:
        return self.previous or self.start

    def after(self) -> dict:
        return self.expected

    def finish(self) -> None:
        next(self.states, None)  # the states' generator ends by marking a large vector's digests verified
def _hidden_state(profile: tuple[str, ...]) -> str | None:
    """Why single-step mode cannot judge against ``profile``: a deviation that keeps state of its own, which a
    state in the spec's layout (iterations, m, v, vhat) cannot set; None if none does."""
    from reference import variants

    for name in profile:
        hidden = getattr(variants.deviation(name), "hidden_state", None)
        if hidden:
            return f"single-step mode: the profile's {name} keeps {hidden}, which the spec's state cannot carry"
    return None


def deviated_states(vector: Vector, profile: tuple[str, ...], initial: dict[str, np.ndarray],
                    gradients: Callable[[int], dict]) -> Iterator[dict]:
    """The states of the spec with the deviations of ``profile``, in the oracle's layout: the NumPy port of the spec
    (``reference.Adam``) with each deviation composed in (``variants.compose``), run in float64 on the vector, its
    hyperparameters taken as the vector's oracle takes them (as given, or as TF 2.0 stores them in the vector's
    dtype).  With no deviation it gives the oracle's states bit for bit (``tests/test_profile.py``)."""
    from conformance.adapters.numpy_port import NumpyPortAdapter
    from reference import variants

    port = variants.compose(*(variants.deviation(name) for name in profile))
    tf2 = vector.record["oracle"] == "tf2"
    stored_in = NUMPY_DTYPES[vector.dtypes[0]] if tf2 else None

    class Judged(port):  # type: ignore[misc, valid-type]
        float32_storage = port.float32_storage and tf2  # the exact oracle stores nothing as float32

        def hyperparameters_for(self, values: dict[str, float], dtype: Any) -> Any:
            return super().hyperparameters_for(values, stored_in)  # the vector's dtype, not float64's

    spec = RunSpec.for_vector(vector, "float64", variables=initial)
    spec.non_contiguous, spec.dtypes = False, {name: "float64" for name in initial}
    session = NumpyPortAdapter(Judged).start(spec)
    for s in range(len(vector.steps)):
        spec.clock.step = s
        with np.errstate(all="ignore"):  # a deviation's overflows are values to compare, not warnings
            session.apply(gradients(s), s)
        read = session.read()
        state: dict[str, Any] = {"iterations": read["iterations"]}
        for name in initial:
            fields = read[name]
            state[name] = {f: None if fields.get(f) is None else np.asarray(fields[f], dtype=np.float64)
                           for f in (("variable", "m", "v", "vhat") if vector.amsgrad else ("variable", "m", "v"))}
        yield state


def _lane(vector: Vector, dtype: str, mode: str, ftz: dict[str, bool], keep: bool, initial: dict[str, np.ndarray]) -> _Lane:
    """One mode's lane, its candidate not built yet."""
    spec = RunSpec.for_vector(vector, dtype, variables=initial)
    dtypes = spec.dtypes
    carried = mode == "trajectory"
    if dtype == MIXED:
        model: Any = MixedErrorModel(vector, dtypes, carried=carried, ftz=ftz, initial=initial)
    else:
        model = ErrorModel(vector, dtype, carried=carried, ftz=ftz[dtype], initial=initial, reuse=not keep)
    return _Lane(spec, model, Outcome(mode, Comparison(dtype, dtypes), scale=model.scale,
                                      observed=[] if keep else None, errors=[] if keep else None))


def _begin(adapter: Adapter, lane: _Lane, missing: dict) -> None:
    """Build a lane's candidate from ``lane.spec`` (timed); what it lacks, or an error, ends the lane here."""
    if lane.outcome.unsupported:
        return
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
    twin = adapter.twin() if lane.session is not None and lane.outcome.mode == "trajectory" else None
    if twin is not None:
        lane.outcome.twin_binding = adapter.twin_binding
        try:
            lane.twin = twin.start(lane.spec)  # the same inputs: its callables read the same clock
        except Exception as exc:  # noqa: BLE001 - the twin is the same candidate: its failure is reported, not raised
            lane.outcome.twin = f"{adapter.twin_label} could not be built to compare with: {type(exc).__name__}: {first_line(exc)}"


def _twin_step(adapter: Adapter, lane: _Lane, grads: dict, s: int, obs: dict) -> None:
    """Step the lane's twin with the same gradients and compare the two states bit for bit (``judge.identical``); the
    first step that differs and the largest difference so far are kept in the outcome."""
    try:
        lane.twin.apply(grads, s)
        theirs = lane.twin.read()
    except Exception as exc:  # noqa: BLE001
        lane.outcome.twin = lane.outcome.twin or (f"{adapter.twin_label} failed at step {s + 1} to compare with: "
                                                  f"{type(exc).__name__}: {first_line(exc)}")
        lane.twin = None
        return
    found = identical.difference(obs, theirs, lane.spec.dtypes)
    if found is not None and found.ulps > lane.twin_worst:
        lane.twin_from = s + 1 if lane.twin_from is None else lane.twin_from
        lane.twin_worst = found.ulps
        lane.outcome.twin = identical.describe(found, lane.twin_from, adapter.twin_label)


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
            read = lane.session.read()
            replicas = lane.session.replicas() if hasattr(lane.session, "replicas") else None
        if replicas and out.replicas is None:
            found = identical.first_disagreement(replicas, lane.spec.dtypes)
            out.replicas = f"{found} at step {s + 1}" if found else None
        return read
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
