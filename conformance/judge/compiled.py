"""The fast path for large vectors: the oracle's step, the error model (E-1..E-6) and the comparison, compiled.

The readable definitions stay in ``reference/adam.py`` (``step``), ``conformance/judge/error_model.py``
(``ErrorModel._chunk``) and ``conformance/judge/compare.py`` (``Comparison._tensor``); this module computes the same
numbers element by element, in the same operation order, with numba, so that a 10^7-element step costs one
pass instead of some forty NumPy passes and no full-size temporaries.  A tensor's elements are shared among the cores by
threads (the kernels let go of the GIL), in ranges that start where the model's slices start, and the ranges'
results are combined in order, so the numbers do not depend on how many threads there are.
``tests/test_compiled.py`` proves the bounds bit-identical to the readable model on every bundled vector, and the
oracle's step to the readable one on values that include zeros of both signs, subnormals, NaN and Inf;
``tests/test_large.py`` proves the states of the driver for large vectors (the oracle's only user) identical to
``Vector.states`` on every vector it takes.

Used only for vectors that keep no per-step arrays (``ErrorModel(reuse=True)``: more than
``runner.KEEP_LIMIT`` elements), for float32 and float64, and only where numba imports; everything else
takes the readable path.  ``ADAM_CONFORMANCE_FUSED=0`` turns it off.
"""

from __future__ import annotations

import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import numpy as np

from reference import adam

#: The dtypes the compiled kernels can round to (numba has no float16 or bfloat16 arithmetic on the CPU).
DTYPES = ("float32", "float64")
#: Tensors at least this large take the fast path: below it, numba's import and the loading of its cached code
#: (about 0.5 s, measured) cost more than the pass saves.
MIN_ELEMENTS = 1 << 22


#: Threads a tensor is shared among; ``ADAM_CONFORMANCE_THREADS`` sets it (1: no threads).
THREADS = int(os.environ.get("ADAM_CONFORMANCE_THREADS", "0")) or (
    len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
#: Elements per slice of the comparison.
COMPARE_SLICE = 1 << 15
#: A tensor is shared among threads only when each gets at least this many elements (a thread's hand-off costs
#: some tens of microseconds).
MIN_SHARE = 1 << 15


@functools.lru_cache(maxsize=1)
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=max(THREADS - 1, 1), thread_name_prefix="adam-conformance-fused")


def _shared(n: int, align: int, work: Callable[[int, int], Any]) -> list[Any]:
    """``work(lo, hi)`` over ranges covering range(n), one per thread, each starting at a multiple of ``align``;
    the results in the ranges' order.  The last range runs in the calling thread."""
    parts = max(min(THREADS, n // MIN_SHARE), 1)
    step = -(-max(n, 1) // parts // align) * align  # ceil(n / parts), rounded up to a multiple of align
    bounds = [(lo, min(lo + step, n)) for lo in range(0, max(n, 1), step)]
    futures = [_pool().submit(work, lo, hi) for lo, hi in bounds[:-1]]
    last = work(*bounds[-1])
    return [f.result() for f in futures] + [last]


def _constant(value: float, n: int) -> np.ndarray:
    """n copies of ``value``: a scalar input that the kernels read as an array (so that they vectorise)."""
    return _filled(np.float64(value).tobytes(), n)  # by its bits: -0.0 is not 0.0, and a NaN is itself


@functools.lru_cache(maxsize=16)
def _filled(bits: bytes, n: int) -> np.ndarray:
    return _readonly(np.full(n, np.frombuffer(bits)[0]))


def _readonly(x: np.ndarray) -> np.ndarray:
    """A read-only view: every input of a kernel is one, so that each kernel is compiled for one type of input."""
    out = x.view()
    out.flags.writeable = False
    return out


_scratch = threading.local()


def _rows(n: int) -> np.ndarray:
    """This thread's four output rows of ``n`` elements (the model writes a slice there, then copies it out)."""
    rows = getattr(_scratch, "rows", None)
    if rows is None or rows.shape[1] != n:
        rows = _scratch.rows = np.empty((4, n))
    return rows


@functools.lru_cache(maxsize=1)
def kernels() -> Any:
    """The compiled kernels, or None when numba is missing or the fast path is turned off.

    Imported on first use, so a run of small vectors never pays numba's import (about 0.35 s).
    """
    if os.environ.get("ADAM_CONFORMANCE_FUSED", "1") == "0":
        return None
    try:
        from conformance.judge import _compiled_kernels
    except ImportError:
        return None
    return _compiled_kernels


def available(dtype: str) -> bool:
    """Whether the fast path serves ``dtype``."""
    return dtype in DTYPES and kernels() is not None


def _flat(x: Any, n: int = 1) -> tuple[np.ndarray, int]:
    """An input as (flat float64 array, stride): stride 0 is a scalar, as ``n`` copies of it (None counts as 0)."""
    if isinstance(x, np.ndarray) and x.ndim:
        return _readonly(np.ascontiguousarray(x, dtype=np.float64).reshape(-1)), 1
    return _constant(0.0 if x is None else float(x), max(n, 1)), 0


def model_step(model: Any, k: Any, inputs: dict, state0: dict | None, new: dict, n: int, chunk: int) -> None:
    """``ErrorModel._chunk`` over every slice of one variable, written into ``new`` (may alias the inputs).

    ``inputs`` are those of ``ErrorModel.step``; ``state0`` the state loaded in single-step mode (its rounding
    replaces the carried errors), or None.  ``chunk`` is the readable model's slice length: two of its tests
    (``np.any(e_g)``) are made per slice, and so they are here.
    """
    kern = kernels()
    args = []
    for key in ("g", "e_g", "m0", "v0", "m1", "v1", "w", "x1", "e_variable", "e_m", "e_v", "e_vhat"):
        args.extend(_flat(inputs[key], chunk))
    loaded = state0 is not None
    for f in ("variable", "m", "v", "vhat"):
        args.extend(_flat(state0.get(f) if loaded else None, chunk))
    out = [new[f].reshape(-1) if f in new else np.empty(0) for f in ("variable", "m", "v", "vhat")]
    rest = (*out, loaded, model.dtype == "float32", model.ftz, model.amsgrad, model.u, model.eta, model.tiny,
            model.largest, k.b1, k.b2, k.eps, k.d_b1, k.d_b2, k.d_eps, k.alpha, k.r_alpha, k.eps_lo)
    _shared(n, chunk, lambda lo, hi: kern.model(lo, hi, n, chunk, *args, *rest, _rows(max(chunk, 1))))


def oracle_step(state: dict[str, np.ndarray], before: dict[str, np.ndarray], g: np.ndarray, hp: Any, t: int,
                chunk: int) -> None:
    """``reference.adam.step`` of one variable on flat float64 arrays, in place: ``state`` (variable, m, v, and vhat
    under AMSGrad) becomes the state after the step, and ``before`` (the same keys) receives the state before it.

    The scalars are made by the reference's own function and expressions, so they are its values whatever their
    type (a hyperparameter stored as float32 stays one, as in the readable oracle); the kernel does the element-wise
    part, in the reference's order.
    """
    kern = kernels()
    alpha = float(adam.bias_corrected_lr(hp.learning_rate, hp.beta_1, hp.beta_2, t))
    c1, c2 = float(1.0 - hp.beta_1), float(1.0 - hp.beta_2)  # as update_m and update_v form them
    amsgrad = "vhat" in state
    x, m, v = state["variable"], state["m"], state["v"]
    h, bh = (state["vhat"], before["vhat"]) if amsgrad else (v, before["v"])
    g = _readonly(np.ascontiguousarray(g, dtype=np.float64))
    n = x.size
    _shared(n, chunk, lambda lo, hi: kern.oracle(lo, hi, chunk, x, m, v, h, g, before["variable"], before["m"],
                                                 before["v"], bh, amsgrad, alpha, float(hp.beta_1), c1,
                                                 float(hp.beta_2), c2, float(hp.epsilon), _rows(max(chunk, 1))))


def compare_finite(have: np.ndarray, want: np.ndarray, err: np.ndarray, scale: float) -> tuple[bool, int, float, int]:
    """The finite case of ``Comparison._tensor`` in one pass: (all finite, index of the largest ratio, that ratio,
    elements over their bound).  When some element is not finite the caller takes the readable path."""
    kern = kernels()
    chunk = COMPARE_SLICE
    e, stride = _flat(err) if err.shape == want.shape else _flat(float(err.reshape(-1)[0]), chunk)
    have, want = _readonly(np.ascontiguousarray(have).reshape(-1)), _flat(want)[0]
    parts = _shared(want.size, 1, lambda lo, hi: kern.compare(lo, hi, chunk, have, want, e, stride, scale,
                                                             _rows(chunk)[0]))
    if not all(p[0] for p in parts):
        return False, 0, 0.0, 0
    best, ratio = parts[0][1], parts[0][2]
    for p in parts[1:]:  # the first element with the largest ratio, as one pass in order finds it
        if p[2] > ratio:
            best, ratio = p[1], p[2]
    return True, int(best), float(ratio), sum(int(p[3]) for p in parts)


def same_in(have: np.ndarray, want: np.ndarray, dtype: str) -> bool:
    """``array_equal(have.astype(dtype), want.astype(dtype), equal_nan=True)`` without full-size temporaries."""
    kern = kernels()
    return bool(kern.same(_readonly(np.ascontiguousarray(have).reshape(-1)), _flat(want)[0], dtype == "float32"))
