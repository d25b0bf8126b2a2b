"""The sliced judge for large vectors (conformance/drive/large.py) against the readable one, bit for bit.

Every bundled vector the driver takes (``large.eligible``: every variable updated at every step) is run
through ``runner.run`` twice, once with the readable judge and once with the sliced one, in float32 and float64
(the kernels' dtypes), both modes, with a conforming port and with ports that fail in different ways
(out of bound, NaN where none may be, a wrong shape, frozen iterations, slots that do not follow, a raise).
What must be equal: every outcome field the report shows (worst elements, violations, problems in their
order, named port mistakes, curves, what was checked, errors, liveness), and, seen through the driver's tap,
the oracle's state after every step and every mode's bound of every tensor at every step, against the
readable oracle (``Vector.states``) and the readable model (``ErrorModel`` on full arrays, with and
without flush-to-zero).

The slice lengths are made small (the model's slice 4 elements, the pass's 8, the oracle's calls 4) for
vectors of up to 5000 elements, so that the driver's slice boundaries, the model's per-slice tests and the
combination of worst elements across slices fall inside them; the larger ``kernels`` vectors and the
outcome test of the scale copies keep the real lengths, the bound test of the scale copies uses 1024, 2048
and 512 (13 model slices, the last one short).

The ``scale`` vectors are 10^6 to 10^8 elements; they run here at 3 * 2^12 + 5 elements with the same
generators, hyperparameters and steps (the argument of tests/test_compiled.py: both drivers are element-wise
in the same inputs, so the arithmetic per element and the slice boundaries decide), stored as sha256
digests like the real ones, so that the driver's own digest checks run; a stale digest must stop both
drivers with the same error.
"""

from __future__ import annotations

import copy
import dataclasses
import pkgutil
from pathlib import Path

import numpy as np
import pytest

from conformance import adapters
from conformance.judge import compiled, error_model
from conformance.drive import runner, large
from conformance.load.files import bundled_paths, load_file
from tests.helpers import bundled_vectors, need_kernels, small_scale

@pytest.fixture(autouse=True)
def _kernels() -> None:
    need_kernels()

CANDIDATES = ["reference:Adam", "reference.variants:EpsilonInsideSqrt", "tests.candidates:NaNAtStepTwo",
              "tests.candidates:FlatSlots", "tests.candidates:StuckIterations", "tests.candidates:StaleSlots",
              "tests.candidates:RaisesOnSparse"]


def _adapter(spec: str, ftz: bool = False):
    adapter = adapters.load(adapters.choose(spec))(pkgutil.resolve_name(spec))
    if ftz:
        adapter.flush_to_zero = lambda dtype: True
    return adapter


def _summary(outcomes: list) -> list:
    """What the report can show of each outcome (sets in a fixed order; NaN compared by repr)."""
    out = []
    for o in outcomes:
        c = o.comparison
        out.append(repr((o.mode, o.error, o.error_step, o.liveness, o.unsupported, o.scale, c.first_failing_step,
                         c.problems, c.mistakes, [dataclasses.astuple(w) for w in c.violations],
                         {k: dataclasses.astuple(w) for k, w in c.worst.items()}, c.curve, sorted(c.checked),
                         sorted(c.not_exposed))))
    return out


def _run(monkeypatch: pytest.MonkeyPatch, adapter, vector, dtype: str, streamed: bool, tap=None):
    monkeypatch.setattr(large, "takes", (lambda v, d, keep: large.eligible(v)) if streamed else (lambda v, d, keep: False))
    monkeypatch.setattr(large, "_tap", tap)
    try:
        return _summary(runner.run(adapter, vector, dtype, runner.MODES, keep=False))
    except Exception as exc:  # noqa: BLE001 - both drivers must raise the same
        return repr(exc)


class _Tap:
    """Collects the driver's states and bounds, slice by slice, into full arrays."""

    def __init__(self) -> None:
        self.parts: dict[tuple, list] = {}

    def __call__(self, kind: str, *args) -> None:
        if kind == "state":
            s, name, start, arrays = args
            key_prefix = ("state", s, name)
        else:
            mode, s, name, start, arrays = args
            key_prefix = ("bound", mode, s, name)
        for f, a in arrays.items():
            seen = self.parts.setdefault(key_prefix + (f,), {})
            assert start not in seen or _same(seen[start], a), key_prefix  # a second pass makes the same state
            seen[start] = a

    def full(self, *key) -> np.ndarray:
        """One tensor's array from its slices (a variable of no elements has none)."""
        return np.concatenate([a for _, a in sorted(self.parts.get(key, {}).items(), key=lambda p: p[0])] + [np.zeros(0)])


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a, dtype=np.float64).reshape(-1), np.asarray(b, dtype=np.float64).reshape(-1)
    return a.shape == b.shape and np.array_equal(a, b, equal_nan=True) and np.array_equal(np.signbit(a), np.signbit(b))


def _check_tap(tap: _Tap, vector, dtype: str, ftz: bool) -> None:
    """The driver's states against the readable oracle, its bounds against the readable model, at every step."""
    states = list(vector.states())
    for s, state in enumerate(states):
        for name, fields in state.items():
            if name != "iterations":
                for f, want in fields.items():
                    assert _same(tap.full("state", s, name, f), want), (vector.id, s, name, f)
    for mode in runner.MODES:
        model = error_model.ErrorModel(vector, dtype, carried=mode == "trajectory", ftz=ftz)
        for s, state in enumerate(states):
            if not any(key[:3] == ("bound", mode, s) for key in tap.parts):
                break  # the lane stopped (an error) before this step
            for name, fields in model.step(s, vector.gradients(s), state).items():
                for f, e in fields.items():
                    assert _same(tap.full("bound", mode, s, name, f), np.broadcast_to(e, state[name][f].shape)), \
                        (vector.id, mode, s, name, f)


#: Vectors up to this many elements run with the small slice lengths (and every candidate); larger ones (the
#: ``kernels`` family's, 10^5 elements and more) with the real ones, so that the readable model stays fast.
SMALL = 5000
CHUNK, SLICE = error_model.CHUNK, large.SLICE


def _slices(monkeypatch: pytest.MonkeyPatch, vector, scale: bool = False) -> None:
    """The model's and the oracle's slice length and the pass's for one vector (the scale copies: 13 model slices)."""
    lengths = (1024, 2048) if scale else (4, 8) if vector.size <= SMALL else (CHUNK, SLICE)
    for (module, name), n in zip(((error_model, "CHUNK"), (large, "SLICE")), lengths):
        monkeypatch.setattr(module, name, n)


@pytest.mark.parametrize("which,one_at_a_time", [
    # every candidate on every bundled vector in every dtype, twice: about a minute, so in the slow tier
    pytest.param("bundled", False, id="bundled-lockstep", marks=pytest.mark.slow),
    pytest.param("bundled", True, id="bundled-one-at-a-time", marks=pytest.mark.slow),  # a quarter of a minute
    pytest.param("scale", False, id="scale-lockstep"),
    pytest.param("scale", True, id="scale-one-at-a-time"),
])
def test_outcomes_are_those_of_the_readable_runner(monkeypatch: pytest.MonkeyPatch, which: str,
                                                    one_at_a_time: bool) -> None:
    """Lockstep, and the modes one after the other (``large.ONE_AT_A_TIME``, made 0 here; with a port out of bound
    and one that makes a port mistake, on the vectors of up to ``SMALL`` elements)."""
    vectors = [v for v in (bundled_vectors() if which == "bundled" else small_scale(digest=True)) if large.eligible(v)]
    assert len(vectors) >= (40 if which == "bundled" else 3)
    if one_at_a_time:
        monkeypatch.setattr(large, "ONE_AT_A_TIME", 0)
    for spec in [CANDIDATES[1], CANDIDATES[4]] if one_at_a_time else CANDIDATES:
        adapter = _adapter(spec)
        for vector in vectors:
            if which == "bundled":
                _slices(monkeypatch, vector)
            if vector.size > SMALL and (spec not in CANDIDATES[:2] or one_at_a_time):
                continue  # a conforming and an out-of-bound port are enough to cover the large ones' arithmetic
            for dtype in compiled.DTYPES:
                readable = _run(monkeypatch, adapter, vector, dtype, False)
                assert isinstance(readable, list) or "Unsupported" in readable, (spec, vector.id, dtype, readable)
                assert _run(monkeypatch, adapter, vector, dtype, True) == readable, (spec, vector.id, dtype)


@pytest.mark.parametrize("ftz", [False, True])
@pytest.mark.parametrize("which", ["bundled", "scale", "scale-one-at-a-time"])
def test_states_and_bounds_are_bit_identical(monkeypatch: pytest.MonkeyPatch, which: str, ftz: bool) -> None:
    adapter = _adapter("reference:Adam", ftz)
    if which == "scale-one-at-a-time":
        monkeypatch.setattr(large, "ONE_AT_A_TIME", 0)  # each mode's pass makes the oracle's states again
    for vector in [v for v in (bundled_vectors() if which == "bundled" else small_scale(digest=True)) if large.eligible(v)]:
        _slices(monkeypatch, vector, scale=which != "bundled")
        for dtype in compiled.DTYPES:
            tap = _Tap()
            _run(monkeypatch, adapter, vector, dtype, True, tap)
            monkeypatch.setattr(large, "_tap", None)
            _check_tap(tap, vector, dtype, ftz)


@pytest.mark.parametrize("one_at_a_time", [False, True], ids=["lockstep", "one-at-a-time"])
def test_a_stale_digest_stops_both_drivers_alike(monkeypatch: pytest.MonkeyPatch, one_at_a_time: bool) -> None:
    adapter = _adapter("reference:Adam")
    if one_at_a_time:
        monkeypatch.setattr(large, "ONE_AT_A_TIME", 0)
    for vector in small_scale(digest=True):
        for s, field in ((0, "m"), (len(vector.steps) - 1, "variable")):
            broken = copy.deepcopy(vector.record)
            name = next(iter(broken["variables"]))
            broken["steps"][s]["expected"]["variables"][name][field]["sha256"] = "0" * 64
            bad = dataclasses.replace(vector, record=broken)
            dtype = bad.dtypes[0]
            readable = _run(monkeypatch, adapter, bad, dtype, False)
            assert "VectorError" in readable and "stale" in readable
            assert _run(monkeypatch, adapter, dataclasses.replace(vector, record=copy.deepcopy(broken)), dtype, True) \
                == readable


def test_the_driver_takes_only_large_digest_vectors() -> None:
    small = small_scale(digest=True)
    assert all(large.eligible(v) for v in small)
    assert not any(large.takes(v, "float32", False) for v in small)  # too small: the readable runner
    vectors, _ = load_file([p for p in bundled_paths() if p.stem == "scale"][0])
    big = [v for v in vectors if v.size >= compiled.MIN_ELEMENTS]
    assert big and all(large.takes(v, "float32", False) for v in big)
    assert not any(large.takes(v, "float16", False) for v in big)
    assert not any(large.takes(v, "float32", True) for v in big)  # observations kept: the readable runner


def _family_file(tmp_path, vectors) -> "Path":
    """A family file holding ``vectors`` (records built in memory), as ``adam-conformance generate`` writes one."""
    from vectors.generate import family_document, render

    doc = {**family_document("dense"), "family": "scale", "vectors": [v.record for v in vectors]}
    path = tmp_path / "scale.yaml"
    path.write_text(render(doc), encoding="utf-8")
    return path


def test_digests_verified_once_are_not_hashed_again(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """The verified-vector cache: a large vector whose digests a run checked is not hashed again by a later load of
    the same file (both drivers), and a changed file is checked again."""
    from conformance.load import files, vector_format

    path = _family_file(tmp_path, small_scale(digest=True)[:1])
    verified: set[str] = set()
    (vector,), _ = load_file(path, verified)
    assert vector.source in verified and not vector.digests_verified
    adapter = _adapter("reference:Adam")
    _run(monkeypatch, adapter, vector, "float32", True)
    assert vector.digests_verified
    verified.add(files.verified_key(vector))  # what State.remember_verified does at the end of a session

    hashed, checked = [], []
    real = vector_format.array_digest
    monkeypatch.setattr(vector_format, "array_digest", lambda x: hashed.append(x.size) or real(x))
    monkeypatch.setattr(files.Vector, "check_state_digests", lambda self, *args: checked.append(args))
    for streamed in (True, False):
        (again,), _ = load_file(path, verified)
        assert again.digests_verified
        assert isinstance(_run(monkeypatch, adapter, again, "float32", streamed), list)
    # The generated inputs are still checked (initial values and gradients, each drive); the states are not hashed.
    assert not checked and len(hashed) == 2 * (1 + len(again.steps))
    path.write_text(path.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    (changed,), _ = load_file(path, verified)
    assert not changed.digests_verified


def test_buffers_are_kept_from_item_to_item_until_one_is_abandoned() -> None:
    """Items run in threads of their own (``items.call_with_timeout``): a buffer is reused by the next run, but not
    after a run was abandoned at its timeout; that run, still going, keeps writing into its own."""
    import threading

    from conformance.drive.timeout import call_with_timeout

    def run_and_take(wait: threading.Event | None = None) -> np.ndarray:
        large.take_pool()  # as the runner does first
        if wait is not None:
            wait.wait(60)
        return large.buffer("test/x", 10)

    first = call_with_timeout(run_and_take, 60)
    assert call_with_timeout(run_and_take, 60) is first
    release, taken = threading.Event(), []
    with pytest.raises(TimeoutError):
        call_with_timeout(lambda: taken.append(run_and_take(release)), 0.2)
    large.abandon()  # what the item does on TimeoutError
    after = call_with_timeout(run_and_take, 60)
    release.set()
    for _ in range(600):
        if taken:
            break
        threading.Event().wait(0.1)
    assert after is not first and taken == [first]
