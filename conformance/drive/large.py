"""The judge for large vectors (``SlicedJudge``): the runner's one loop steps every mode's candidate first, then
one pass over the slices does the oracle's side of the step.

On this kind of machine a large vector's cost is set less by arithmetic than by how far the process grows:
touching fresh memory costs 0.4 to 2.5 ms per MB (docs/performance.md), more than the arithmetic done on it.
The readable judge (``runner._ReadableJudge``) holds, at the step that decides, the oracle's state before and after the
step and each mode's full-size error arrays.  This judge holds only what must outlive a slice, in buffers kept
from step to step and from run to run (``buffer``):

- the oracle's state (variable, m, v, vhat), updated in place slice by slice (the variable's array is the
  initial values' own: every adapter copies them into its dtype when it builds the candidate);
- the step's gradient;
- trajectory mode's carried errors, overwritten in place; single-step mode's errors live for one slice.

The modes run in lockstep, one pass of the oracle per step for both; from ``ONE_AT_A_TIME`` elements on they run
one after the other, each with a pass of its own, so that one candidate and its read-backs are held at a time.

For each slice it runs the oracle's step (the compiled twin of ``reference.adam.step``, ``compiled.oracle_step``),
hashes the new state for the vector's digests (on a thread of its own, beside the rest), evaluates every mode's
error model (the compiled twin of ``ErrorModel._chunk``) and compares every tensor of every mode (the compiled
finite case, or the readable ``Comparison.scan`` for a slice that holds NaN or Inf).  The outcome of each step is
then recorded in the readable order (``Comparison.record``), so the report cannot tell the two judges apart:
``tests/test_large.py`` proves the outcomes, the bounds and the oracle's states identical to the readable
runner's on every bundled vector this judge takes, and the vector's sha256 digests check the twin's states
against those the readable oracle made when the vector was generated (``generate``).

A run that fails needs the oracle's state before the failing step (``port_mistakes``); it is made again by the
readable oracle for the first failing step, and kept as a copy for the steps after it.
"""

from __future__ import annotations

import functools
import hashlib
import mmap
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from conformance.judge import compiled, error_model
from conformance.judge.compare import Comparison
from conformance.dtypes import MIXED, NUMPY_DTYPES
from conformance.load.vector import Vector
from reference import adam

#: Elements per slice of the pass: a multiple of the model's slice (``error_model.CHUNK``), whose per-slice
#: tests it keeps, and large enough that the compiled kernels share it among the cores (``compiled.MIN_SHARE``);
#: measured at 10^7 elements against 2^15 and 2^17 (docs/performance.md).
SLICE = 1 << 18
#: Vectors of at least this many elements run their modes one after the other (``drive``): at 10^8 float32
#: elements, holding both modes' candidates and read-backs at once took the process past 14 GiB.
ONE_AT_A_TIME = 1 << 25
#: Buffers kept for the next run up to this many bytes in all: a 10^7-element run's are kept, a 10^8 one's freed.
POOL_BYTES = 2 << 30
#: The buffers runs take (``buffer``); ``abandon`` starts a new pool.
_pool: dict[str, np.ndarray] = {}
#: The pool a run in this thread took when it started: a run abandoned at its timeout keeps writing into its own.
_running = threading.local()
#: Tests set this to ``f(kind, *values)`` to see the states and bounds the pass makes (``tests/test_large.py``).
_tap: Callable[..., None] | None = None


def buffer(role: str, n: int) -> np.ndarray:
    """A float64 array of ``n`` elements for ``role``: the same one from step to step and run to run while the
    size stays, so its pages are touched once (contents undefined)."""
    pool = getattr(_running, "pool", _pool)
    have = pool.get(role)
    if have is None or have.size != n:
        pool.pop(role, None)  # freed before the new one is made, so the new one can take its pages
        have = pool[role] = mapped(n)
    return have


def take_pool() -> None:
    """A run starting in this thread takes the current pool, and keeps it to its end (``abandon``)."""
    _running.pool = _pool


def abandon() -> None:
    """The run in progress was abandoned at its timeout and may still be running in its thread: later runs take
    buffers of their own, so that it cannot write into theirs."""
    global _pool
    _pool = {}


def mapped(n: int) -> np.ndarray:
    """A new float64 array of ``n`` zeros in a mapping of its own, its pages made present now, by this thread.

    Why not ``np.empty``: NumPy asks for transparent huge pages for large arrays, and on this kind of machine the
    first touch of a fresh huge page was measured at about 2.5 ms per MB, against 0.4 to 0.8 ms per MB for ordinary
    pages made present by the kernel at once (``MAP_POPULATE``; docs/performance.md).  Why now: first touches from
    several threads at once (the compiled model's) contend for the process's page tables, several times slower.
    """
    if not hasattr(mmap, "MAP_ANONYMOUS"):  # not a POSIX system
        return np.zeros(n)
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_POPULATE", 0)
    out = np.frombuffer(mmap.mmap(-1, max(n, 1) * 8, flags=flags), dtype=np.float64)[:n]
    if not getattr(mmap, "MAP_POPULATE", 0):
        out.fill(0.0)
    return out


def trim() -> None:
    """Free the pooled buffers if they hold more than ``POOL_BYTES``."""
    pool = getattr(_running, "pool", _pool)
    if sum(a.nbytes for a in pool.values()) > POOL_BYTES:
        pool.clear()


@functools.lru_cache(maxsize=1)
def _hasher() -> ThreadPoolExecutor:
    """One thread, so that a tensor's slices are hashed in their order."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="adam-conformance-sha256", initializer=_yielding)


def _yielding() -> None:
    """The hashing thread runs at the lowest priority, so that it takes a core only when the pass leaves one
    idle (the Python between the kernels, the making of a gradient) or waits for it: at 10^7 elements, hashing
    at equal priority made the pass 0.1 to 0.3 s slower, contending with the compiled kernels' two threads
    (docs/performance.md).  Linux only, where a thread has a nice value of its own (elsewhere the call would
    lower the whole process); where it is refused, the thread hashes at the priority it has."""
    if sys.platform == "linux":
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except OSError:
            pass


def takes(vector: Vector, dtype: str, keep: bool) -> bool:
    """Whether this judge takes an item: a large vector stored as digests, in a dtype the kernels serve, whose
    every step gives every variable a dense or sparse gradient (the readable runner takes everything else)."""
    return (not keep and vector.expected is None and vector.size >= compiled.MIN_ELEMENTS and compiled.available(dtype)
            and eligible(vector))


def eligible(vector: Vector) -> bool:
    """The shape of vector this judge handles: every variable updated at every step, contiguous tensors, one dtype,
    no clipping (the readable runner's oracle clips; this one's does not)."""
    names = set(vector.shapes)
    return not vector.non_contiguous and MIXED not in vector.dtypes and not vector.record.get("clipping") and all(
        set(step["gradients"]) == names and all(g is not None for g in step["gradients"].values())
        for step in vector.steps)


@dataclass
class _Found:
    """One tensor of one mode at one step, as far as the pass has got."""

    shaped: np.ndarray  # the candidate's tensor
    have: np.ndarray  # the same, flat
    best: int = 0
    ratio: float = -1.0
    n_bad: int = 0
    allowed: float = 0.0  # e at the worst element, before the scale
    problem: str | None = None  # a NaN where none may be: the tensor is not compared further at this step


def groups(vector: Vector, lanes: list) -> list[list]:
    """The lanes run in lockstep over one pass of the oracle per step; from ``ONE_AT_A_TIME`` elements on, one after
    the other, the oracle's pass made again for each, so that one candidate and one read-back are held at a time."""
    return [lanes] if vector.size < ONE_AT_A_TIME else [[lane] for lane in lanes]


class SlicedJudge:
    """The oracle's side of the runner's loop (``runner.Judge``) for a large vector, one pass over the slices per
    step.  Raises VectorError when a generated input or the oracle's state does not match its stored sha256."""

    def __init__(self, vector: Vector, lanes: list) -> None:
        self.vector, self.steps = vector, len(vector.steps)
        self.fields = ("variable", "m", "v", "vhat") if vector.amsgrad else ("variable", "m", "v")
        self.digests = vector.expected is None and not vector.digests_verified
        self.trajectory = any(lane.outcome.mode == "trajectory" for lane in lanes)
        self.state: dict[str, Any] = {"iterations": 0}  # the oracle's, updated in place, slice by slice
        self.carried: dict[str, dict[str, np.ndarray]] = {}  # trajectory mode's errors, overwritten in place
        self.prior: dict | None = None  # the oracle's state before the step, once a lane has failed
        self.checks: list[Callable[[], None]] = []

    def initial(self) -> dict[str, np.ndarray]:
        # The initial values' sha256 is checked now: the pass updates them in place (they are the oracle's variable).
        initial = self.vector.initial(lambda name, shape: _into(f"{name}/initial", shape))
        for name, x in initial.items():
            self.state[name] = {"variable": x}  # updated in place: every adapter copies the initial values it is given
            for f in self.fields[1:]:
                self.state[name][f] = buffer(f"{name}/{f}", x.size).reshape(x.shape)
                self.state[name][f].fill(0.0)  # ADAM-INIT-1: the oracle's slots start at zero
        if self.trajectory:
            self.carried = {name: {f: buffer(f"{name}/e_{f}", x.size) for f in self.fields} for name, x in initial.items()}
        return initial

    def idle(self, lanes: list) -> bool:
        # Nothing to run, and the oracle's first step was checked already (by an earlier mode or session).
        return self.vector.digests_verified and not any(
            lane.outcome.error is None and lane.outcome.unsupported is None for lane in lanes)

    def gradients(self, s: int) -> dict[str, Any]:
        grads, self.checks = self.vector.generated_gradients(s, lambda name, shape: _into(f"{name}/g", shape))
        return grads

    def loaded(self, s: int) -> dict | None:
        return self.state if s > 0 else None

    def step(self, s: int, grads: dict[str, Any], observed: list) -> None:
        self.prior = _copy(self.state) if any(lane.outcome.comparison.first_failing_step is not None
                                              for lane, _ in observed) else None
        # The gradients' sha256 is checked on the hashing thread, beside the pass (which does not change them); a
        # gradient that does not match is the error to report, rather than the states made from it.
        checking = [_hasher().submit(check) for check in self.checks]
        try:
            found = _pass(self.vector, s, self.state, grads, observed, self.carried, self.fields, self.digests)
        finally:
            for job in checking:
                job.result()
        self.state["iterations"] = s + 1
        for lane, obs in observed:
            _record(lane.outcome.comparison, s + 1, obs, self.state, found[id(lane)], lane.model.scale)

    def before(self, s: int) -> dict:
        if self.prior is None:  # a lane failed at this step for the first time: made again, once
            self.prior = _replayed(self.vector, s)
        return self.prior

    def after(self) -> dict:
        return self.state

    def finish(self) -> None:
        if self.digests:
            self.vector.mark_digests_verified()


def _copy(state: dict) -> dict:
    return {n: (x if n == "iterations" else {f: a.copy() for f, a in x.items()}) for n, x in state.items()}


def _replayed(vector: Vector, s: int) -> dict:
    """The oracle's state before step ``s`` (0-based), made again by the readable oracle (a failing run only)."""
    if s == 0:
        return {"iterations": 0, **{n: {"variable": x} for n, x in vector.initial().items()}}
    for t, state in enumerate(vector.recomputed_states()):
        if t == s - 1:
            return state
    raise AssertionError("unreachable")


def _into(role: str, shape: tuple[int, ...]) -> np.ndarray:
    """The pooled buffer of ``role``, shaped."""
    return buffer(role, int(np.prod(shape, dtype=np.int64))).reshape(shape)


def _width() -> int:
    """The pass's slice: slices start where the model's do, so its per-slice tests are the same."""
    return max(SLICE // error_model.CHUNK, 1) * error_model.CHUNK


def _pass(vector: Vector, s: int, state: dict, grads: dict, observed: list, carried: dict, fields: tuple,
          digests: bool) -> dict[int, dict[tuple[str, str], _Found]]:
    """Step ``s`` of the oracle (``state`` updated in place), its digests, both modes' bounds and comparisons."""
    hp = vector.hyperparameters_at(s)
    t = adam.local_step(s)
    width = _width()
    found: dict[int, dict[tuple[str, str], _Found]] = {id(lane): {} for lane, _ in observed}
    for name in vector.shapes:
        now = state[name]
        shape, n = now["variable"].shape, now["variable"].size
        flat = {f: now[f].reshape(-1) for f in fields}
        g_obj = grads[name]
        g = adam.dense_gradient(g_obj, shape).reshape(-1)
        hashes = {f: hashlib.sha256() for f in fields} if digests else {}
        hashed = []  # the hashing runs beside the pass, in order, on one thread of its own (hashlib lets go of the GIL)
        scratch = {f: buffer(f"slice/{f}", width) for f in fields}  # the state before the step, one slice
        lanes = []
        for lane, obs in observed:
            model = lane.model
            e_g = model._gradient_error(g_obj, g.reshape(shape))
            cmp = lane.outcome.comparison
            tensors = {}
            for f in fields:
                have = obs.get(name, {}).get(f)
                if have is None:
                    continue
                have = np.asarray(have)
                label = f"{name}.{f}"
                if (have.shape == shape and have.dtype == NUMPY_DTYPES[cmp.dtype] and n
                        and not any(p.startswith(f"{label}:") for p in cmp.problems)):
                    tensors[f] = found[id(lane)][(name, f)] = _Found(have, np.ascontiguousarray(have).reshape(-1))
            if isinstance(e_g, np.ndarray) and e_g.ndim:
                e_g = e_g.reshape(-1)
            lanes.append((lane, model, model.scalars(s), e_g, tensors))
        for start in range(0, n, width):
            part = slice(start, min(start + width, n))
            old = {f: scratch[f][:part.stop - start] for f in fields}  # the state before the step, this slice
            new = {f: flat[f][part] for f in fields}  # the state after the step, this slice, once the oracle ran
            compiled.oracle_step(new, old, g[part], hp, t, error_model.CHUNK)
            for f in fields:
                if digests:
                    hashed.append(_hasher().submit(hashes[f].update, memoryview(new[f]).cast("B")))
            if _tap is not None:
                _tap("state", s, name, start, {f: new[f].copy() for f in fields})
            args = [(lane, model, k, g, e_g, part, old, new, carried.get(name), s, fields, state, tensors, name)
                    for lane, model, k, e_g, tensors in lanes]
            same = None
            for a in args:
                same = _slice(*a, same if s == 0 else None)
        for job in hashed:
            job.result()
        if digests:
            vector.check_state_digests(s, name, {f: h.hexdigest() for f, h in hashes.items()})
    return found


def _slice(lane: Any, model: Any, k: Any, g: np.ndarray, e_g: Any, part: slice, old: dict, new: dict,
           carried: dict | None, s: int, fields: tuple, state: dict, tensors: dict[str, _Found], name: str,
           same: dict | None) -> dict[str, np.ndarray]:
    """One mode's bounds on one slice (the compiled model) and the comparison of its tensors there; returns the bounds.

    ``same``: the bounds another mode made on this slice at the first step, where both modes start from the same
    errors (those of handing over the initial values), so that the model runs once.
    """
    n = part.stop - part.start
    trajectory = lane.outcome.mode == "trajectory"
    # Trajectory mode overwrites its carried errors in place (element-wise, as ErrorModel(reuse=True) does);
    # single-step mode's errors are needed for this slice only.
    out = {f: carried[f][part] for f in fields} if trajectory else {f: buffer(f"slice/e_{f}", _width())[:n]
                                                                      for f in fields}
    if same is not None:
        for f in fields:
            np.copyto(out[f], same[f])
    else:
        _bounds(model, k, g, e_g, part, old, new, out, s, trajectory, fields)
    if _tap is not None:
        _tap("bound", lane.outcome.mode, s, name, part.start, {f: out[f].copy() for f in fields})
    _compare(lane, model.scale, part, state[name], out, tensors, s, name)
    return out


def _bounds(model: Any, k: Any, g: np.ndarray, e_g: Any, part: slice, old: dict, new: dict, out: dict, s: int,
            trajectory: bool, fields: tuple) -> None:
    """``ErrorModel.step`` of one mode on one slice, written into ``out`` (the compiled twin, ``compiled.model_step``)."""
    n = part.stop - part.start
    if s == 0:  # both modes: the errors brought in are those of handing over the initial values
        state0: dict | None = {"variable": old["variable"], "m": None, "v": None, "vhat": None}
    elif trajectory:
        state0 = None
    else:  # single-step: the rounding of the oracle's state just loaded
        state0 = {f: old.get(f) for f in error_model.FIELDS}
    inputs = {"g": g[part], "e_g": e_g[part] if isinstance(e_g, np.ndarray) and e_g.ndim else e_g,
              "m0": old["m"], "v0": old["v"], "m1": new["m"], "v1": new["v"],
              "w": new["vhat"] if "vhat" in fields else new["v"], "x1": new["variable"],
              **{f"e_{f}": out[f] if trajectory and s > 0 and f in out else 0.0 for f in error_model.FIELDS}}
    compiled.model_step(model, k, inputs, state0, out, n, error_model.CHUNK)


def _compare(lane: Any, scale: float, part: slice, now: dict, out: dict, tensors: dict[str, _Found], s: int,
             name: str) -> None:
    """The comparison of one mode's tensors on one slice, continuing what earlier slices found."""
    for f, t in tensors.items():
        if t.problem is not None:
            continue
        want, bound = now[f], out[f]
        done, best, ratio, n_bad = compiled.compare_finite(t.have[part], want.reshape(-1)[part], bound, scale)
        if done:
            if ratio > t.ratio:
                t.best, t.ratio, t.allowed = part.start + best, ratio, float(bound[best])
            t.n_bad += n_bad
            continue
        # NaN or Inf in this slice: the readable comparison, over the model's slices of it.
        scratch = Comparison(lane.outcome.comparison.dtype, lane.outcome.comparison.dtypes)
        parts = [slice(i, min(i + error_model.CHUNK, part.stop)) for i in range(part.start, part.stop, error_model.CHUNK)]
        result = scratch.scan(f"{name}.{f}", s + 1, t.shaped, want, want, bound, scale, parts, (t.best, t.ratio, t.n_bad),
                              err_start=part.start)
        if result is None:
            t.problem = scratch.problems[0]
            continue
        if result[1] > t.ratio:
            t.allowed = float(bound[result[0] - part.start] if bound.size > 1 else bound[0])
        t.best, t.ratio, t.n_bad = result


def _record(cmp: Comparison, s: int, obs: dict, state: dict, found: dict[tuple[str, str], _Found], scale: float) -> None:
    """``Comparison.add_step`` of step ``s`` (1-based) from what the pass found, in the readable order."""
    cmp.check_iterations(s, obs, state["iterations"])
    for name, now in state.items():
        if name == "iterations":
            continue
        for f, want in now.items():
            have = obs.get(name, {}).get(f)
            label = f"{name}.{f}"
            if have is None:
                if f == "variable":
                    cmp._fail(s, f"step {s}: {label} missing from the candidate's output")
                cmp.not_exposed.add(f)
                continue
            cmp.checked.add(f)
            t = found.get((name, f))
            if t is None:  # not compared element by element: its structural problem is recorded here
                cmp.comparable(label, s, np.asarray(have), want)
            elif t.problem is not None:
                cmp._fail(s, t.problem)
            else:
                cmp.record(label, s, np.asarray(have), want, t.best, t.ratio, t.n_bad, scale * t.allowed)
