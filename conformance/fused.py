"""The fast path for large vectors: the error model (E-1..E-6) and the comparison in one compiled pass.

The readable definitions stay in ``conformance/tolerance.py`` (``ErrorModel._chunk``) and
``conformance/compare.py`` (``Comparison._tensor``); this module computes the same numbers element by
element, in the same operation order, with numba, so that a 10^7-element step costs one pass instead of
some forty NumPy passes and no full-size temporaries.  ``tests/test_fused.py`` proves the bounds
bit-identical to the readable model on every bundled vector.

Used only for vectors that keep no per-step arrays (``ErrorModel(reuse=True)``: more than
``runner.KEEP_LIMIT`` elements), for float32 and float64, and only where numba imports; everything else
takes the readable path.  ``ADAM_CONFORMANCE_FUSED=0`` turns it off.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np

#: The dtypes the compiled kernels can round to (numba has no float16 or bfloat16 arithmetic on the CPU).
DTYPES = ("float32", "float64")
#: Tensors at least this large take the fast path: below it, numba's import and the loading of its cached code
#: (about 0.5 s, measured) cost more than the pass saves.
MIN_ELEMENTS = 1 << 22


@functools.lru_cache(maxsize=1)
def kernels() -> Any:
    """The compiled kernels, or None when numba is missing or the fast path is turned off.

    Imported on first use, so a run of small vectors never pays numba's import (about 0.35 s).
    """
    if os.environ.get("ADAM_CONFORMANCE_FUSED", "1") == "0":
        return None
    try:
        from conformance import _fused_kernels
    except ImportError:
        return None
    return _fused_kernels


def available(dtype: str) -> bool:
    """Whether the fast path serves ``dtype``."""
    return dtype in DTYPES and kernels() is not None


def _flat(x: Any) -> tuple[np.ndarray, int]:
    """An input as (flat float64 array, stride): stride 0 broadcasts a scalar (None counts as 0)."""
    if x is None:
        return np.zeros(1), 0
    if isinstance(x, np.ndarray) and x.ndim:
        return np.ascontiguousarray(x, dtype=np.float64).reshape(-1), 1
    return np.full(1, float(x)), 0


def model_step(model: Any, k: Any, inputs: dict, state0: dict | None, new: dict, n: int, chunk: int) -> None:
    """``ErrorModel._chunk`` over every slice of one variable, written into ``new`` (may alias the inputs).

    ``inputs`` are those of ``ErrorModel.step``; ``state0`` the state loaded in single-step mode (its rounding
    replaces the carried errors), or None.  ``chunk`` is the readable model's slice length: two of its tests
    (``np.any(e_g)``) are made per slice, and so they are here.
    """
    kern = kernels()
    args = []
    for key in ("g", "e_g", "m0", "v0", "m1", "v1", "w", "x1", "e_variable", "e_m", "e_v", "e_vhat"):
        args.extend(_flat(inputs[key]))
    loaded = state0 is not None
    for f in ("variable", "m", "v", "vhat"):
        args.extend(_flat(state0.get(f) if loaded else None))
    out = [new[f].reshape(-1) if f in new else np.empty(0) for f in ("variable", "m", "v", "vhat")]
    kern.model(n, chunk, *args, *out, loaded, model.dtype == "float32", model.ftz, model.amsgrad, model.u, model.eta,
               model.tiny, model.largest, k.b1, k.b2, k.eps, k.d_b1, k.d_b2, k.d_eps, k.alpha, k.r_alpha, k.eps_lo)


def compare_finite(have: np.ndarray, want: np.ndarray, err: np.ndarray, scale: float) -> tuple[bool, int, float, int]:
    """The finite case of ``Comparison._tensor`` in one pass: (all finite, index of the largest ratio, that ratio,
    elements over their bound).  When some element is not finite the caller takes the readable path."""
    kern = kernels()
    e, stride = _flat(err) if err.shape == want.shape else (np.full(1, float(err.reshape(-1)[0])), 0)
    return kern.compare(np.ascontiguousarray(have).reshape(-1), np.ascontiguousarray(want, np.float64).reshape(-1),
                        e, stride, scale)


def same_in(have: np.ndarray, want: np.ndarray, dtype: str) -> bool:
    """``array_equal(have.astype(dtype), want.astype(dtype), equal_nan=True)`` without full-size temporaries."""
    kern = kernels()
    return bool(kern.same(np.ascontiguousarray(have).reshape(-1), np.ascontiguousarray(want, np.float64).reshape(-1),
                          dtype == "float32"))
