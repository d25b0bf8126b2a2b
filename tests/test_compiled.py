"""The fast path for large vectors (conformance/judge/compiled.py) against the readable definitions, bit for bit.

What is compared, on every bundled vector except the ``scale`` family, in float32 and float64 (the fast
path's dtypes, whatever dtypes the vector lists: the model is defined for any), in both modes, with and
without flush-to-zero: the error model's bound of every tensor at every step, ``np.array_equal`` with
NaN equal to NaN, and the sign bits.  The readable model's slice length is made 4 elements, so that its
per-slice tests (``np.any`` of the gradient error, of the overflow mask) fall at many slice boundaries
inside these small vectors; the kernels take the same slice length.

Why the ``scale`` vectors are checked on smaller instances: they are 10^6 to 10^8 elements, and both
paths are element-wise functions of the same inputs (the same generators, the same oracle), so what
decides identity is the arithmetic per element and the slice boundaries, which the instances below
exercise: the same generator specs, hyperparameters and steps at 3 * 2^12 + 5 elements, with the
readable slice length at its real value (one slice) and at 1024 (13 slices, the last one short).
"""

from __future__ import annotations


import numpy as np
import pytest

from conformance.judge import compiled, error_model
from conformance.judge.compare import Comparison
from tests.helpers import bundled_vectors, need_kernels, small_scale

@pytest.fixture(autouse=True)
def _kernels() -> None:
    need_kernels()


def _bounds(vector, dtype: str, carried: bool, ftz: bool, fast: bool) -> list:
    model = error_model.ErrorModel(vector, dtype, carried=carried, ftz=ftz)
    model.fused = fast
    out = []
    for s, state in enumerate(vector.states()):
        errors = model.step(s, vector.gradients(s), state)
        out.append({n: {f: None if x is None else np.array(x, copy=True) for f, x in fields.items()}
                    for n, fields in errors.items()})
    return out


def _assert_same(readable: list, fast: list, what: str) -> None:
    for s, (a, b) in enumerate(zip(readable, fast, strict=True)):
        for name in a:
            for f in a[name]:
                x, y = a[name][f], b[name][f]
                assert (x is None) == (y is None), (what, s, name, f)
                if x is None:
                    continue
                x, y = np.broadcast_arrays(np.asarray(x), np.asarray(y))
                assert np.array_equal(x, y, equal_nan=True), (what, s, name, f)
                assert np.array_equal(np.signbit(x), np.signbit(y)), (what, s, name, f)


@pytest.mark.parametrize("chunk, which, threads", [pytest.param(4, "bundled", 3, marks=pytest.mark.slow),  # 10 s
                                                   pytest.param(error_model.CHUNK, "bundled", 0, marks=pytest.mark.slow),
                                                   (1024, "scale", 3),
                                                   (error_model.CHUNK, "scale", 0)])
def test_bounds_are_bit_identical_on_every_vector(monkeypatch: pytest.MonkeyPatch, chunk: int, which: str,
                                                  threads: int) -> None:
    """``threads``: the tensors are shared among that many threads in ranges of a few slices (0: as configured)."""
    monkeypatch.setattr(error_model, "CHUNK", chunk)
    if threads:
        monkeypatch.setattr(compiled, "THREADS", threads)
        monkeypatch.setattr(compiled, "MIN_SHARE", 2 * chunk)
    vectors = bundled_vectors() if which == "bundled" else small_scale(digest=False)
    if chunk == 4:  # slices of 4 put boundaries everywhere; the kernels family's 10^5-element vectors take the real length
        vectors = [v for v in vectors if v.size <= 5000]
    for vector in vectors:
        for dtype in compiled.DTYPES:
            for carried in (True, False):
                for ftz in (False, True):
                    what = (vector.id, dtype, carried, ftz)
                    _assert_same(_bounds(vector, dtype, carried, ftz, False), _bounds(vector, dtype, carried, ftz, True), what)


@pytest.mark.parametrize("threads", [0, 5])
def test_comparison_fast_path_matches(monkeypatch: pytest.MonkeyPatch, threads: int) -> None:
    """compare_finite gives the readable comparison's worst element, ratio and count of elements out of bound, also
    when the tensor is shared among threads in small ranges whose results are combined (``threads``; 0: as
    configured), with the largest ratio reached twice (the first index wins)."""
    if threads:
        monkeypatch.setattr(compiled, "THREADS", threads)
        monkeypatch.setattr(compiled, "MIN_SHARE", 1000)
    rng = np.random.default_rng(7)
    want = rng.standard_normal(70_001)
    err = np.abs(rng.standard_normal(want.size)) * 1e-7
    err[::97] = 0.0
    for dtype, have in (("float32", (want + rng.standard_normal(want.size) * 2e-7).astype(np.float32)),
                        ("float64", want + rng.standard_normal(want.size) * 2e-7)):
        cmp = Comparison(dtype)
        cmp._tensor("a.variable", 1, have, want, err, 4.0, want)
        ok, best, ratio, n_bad = compiled.compare_finite(have, want, err, 4.0)
        w = cmp.worst["a.variable"]
        assert ok and w.index == (best,) and w.ratio == ratio
        assert cmp.violations[0].mismatched[0] == n_bad
        have[-3] = np.nan  # in the last range: the combined answer is "not all finite"
        assert not compiled.compare_finite(have, want, err, 4.0)[0]
    assert not compiled.compare_finite(np.array([np.nan]), np.array([1.0]), np.array([1.0]), 1.0)[0]


def test_same_in() -> None:
    want = np.array([1.0, np.nan, 2.0 ** -140, 1e39, 0.1])
    for dtype in compiled.DTYPES:
        with np.errstate(over="ignore"):
            held = want.astype(dtype)
        assert compiled.same_in(held, want, dtype)
        held[4] = 0.2
        assert not compiled.same_in(held, want, dtype)


@pytest.mark.parametrize("seed, scale, exact, n", [(1, 2.0, ["float32"], 200_003), (2, 1.0, ["float32", "float64"], 65_536),
                                                   (3, 0.3, ["float16"], 1000), (4, 1.0, ["float64"], 2 * 65_536 + 1),
                                                   (5, 1.0, [], 0)])
def test_generated_values_are_those_of_one_call(seed: int, scale: float, exact: list, n: int) -> None:
    """The generator, made slice by slice, gives the bytes of the one-call formula of its docstring."""
    import math

    from conformance.dtypes import PRECISION, exact_in
    from conformance.load.vector_format import generated_values

    p = min((PRECISION[d] for d in exact), default=53)
    k = (np.random.PCG64(seed).random_raw(n) >> np.uint64(64 - p)).astype(np.int64) - (1 << (p - 1))
    want = k.astype(np.float64) * (scale * 2.0 ** (1 - p))
    if math.frexp(scale)[0] != 0.5:
        want = exact_in(want, exact)
    assert generated_values(seed, scale, exact, (n,)).tobytes() == want.tobytes()


def _state(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    """Variable, gradient, m, v, vhat of n elements: ordinary values with zeros of both signs, subnormals, NaN,
    +-Inf and values near the float64 range scattered among them."""
    special = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 5e-324, -2.0 ** -1030, 1e300, -1e300, 1.0])
    out = []
    for k in range(5):
        x = rng.standard_normal(n) * 10.0 ** rng.integers(-8, 3, n)
        where = rng.random(n) < 0.05
        x[where] = rng.choice(special, int(where.sum()))
        out.append(np.abs(x) if k >= 3 else x)  # v and vhat as the oracle makes them, and NaN
    return out


@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("hyper", ["exact", "tf2", "zero-epsilon"])
@pytest.mark.parametrize("chunk, threads", [(4, 3), (error_model.CHUNK, 0)])
def test_oracle_step_is_the_readable_step(monkeypatch: pytest.MonkeyPatch, amsgrad: bool, hyper: str, chunk: int,
                                          threads: int) -> None:
    """``compiled.oracle_step`` against ``reference.adam.step``, bit for bit (sign bits too), the state before the step
    handed back unchanged; with the tensor shared among threads in ranges of a few slices."""
    from reference import adam

    if threads:
        monkeypatch.setattr(compiled, "THREADS", threads)
        monkeypatch.setattr(compiled, "MIN_SHARE", 8)
    rng = np.random.default_rng(7)
    hp = adam.Hyperparameters(0.001, 0.9, 0.999, 0.0 if hyper == "zero-epsilon" else 1e-7)
    if hyper == "tf2":  # stored as float32, decayed (the tf2 oracle's hyperparameters)
        hp = adam.call_hyperparameters(0.001, 0.9, 0.999, 1e-7, 0.01, 5, float32_storage=True, dtype=np.float32)
    for n, t in [(1, 1), (37, 2), (5000, 7)]:
        x, g, m, v, vhat = _state(rng, n)
        with np.errstate(all="ignore"):  # Inf - Inf and the like, in the readable oracle's NumPy operations
            want_x, want = adam.step(x, g, adam.Slots(m, v, vhat if amsgrad else None), hp, t)
        state = {"variable": x.copy(), "m": m.copy(), "v": v.copy(), **({"vhat": vhat.copy()} if amsgrad else {})}
        before = {f: np.full(n, 12345.0) for f in state}
        compiled.oracle_step(state, before, g, hp, t, chunk)
        expect = {"variable": want_x, "m": want.m, "v": want.v, **({"vhat": want.vhat} if amsgrad else {})}
        old = {"variable": x, "m": m, "v": v, "vhat": vhat}
        for f, a in expect.items():
            assert np.array_equal(state[f], a, equal_nan=True), (n, f)
            assert np.array_equal(np.signbit(state[f]), np.signbit(a)), (n, f)
            assert before[f].tobytes() == old[f].tobytes(), (n, f)
