"""The four floating-point dtypes of the spec: their NumPy types, precisions and formats, in one table.

Everything that names a dtype (the loader, the runner, the comparison, the
error model, the adapters, the scenarios) takes it from here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import ml_dtypes
import numpy as np

#: The dtypes a vector may list, narrowest first.
DTYPES = ("float16", "bfloat16", "float32", "float64")
#: What a vector lists instead when each of its variables has a dtype of its own (ADAM-DTYPE-2): it is run once,
#: every variable in its own dtype, in one call.
MIXED = "mixed"

NUMPY_DTYPES = {
    "float16": np.dtype(np.float16),
    "bfloat16": np.dtype(ml_dtypes.bfloat16),
    "float32": np.dtype(np.float32),
    "float64": np.dtype(np.float64),
}


@dataclass(frozen=True)
class Format:
    """A binary floating-point format: precision p (bits, with the implicit one) and minimum normal exponent."""

    p: int
    emin: int

    @property
    def u(self) -> float:
        """Unit roundoff, 2**-p."""
        return 2.0**-self.p

    @property
    def tiny(self) -> float:
        """The smallest normal number."""
        return 2.0**self.emin

    @property
    def smallest_subnormal(self) -> float:
        """The smallest positive subnormal number."""
        return 2.0 ** (self.emin - self.p + 1)

    def underflow(self, ftz: bool) -> float:
        """The absolute error of one operation whose result underflows.

        Gradual underflow: half the smallest subnormal.  Flush-to-zero (and
        denormals-are-zero): up to the smallest normal, since any subnormal
        result or input may become 0.
        """
        return self.tiny if ftz else 2.0 ** (self.emin - self.p)


FORMATS = {"float64": Format(53, -1022), "float32": Format(24, -126), "float16": Format(11, -14), "bfloat16": Format(8, -126)}

#: Significand bits (with the implicit one) of each dtype.
PRECISION = {name: fmt.p for name, fmt in FORMATS.items()}


#: Hyperparameters exact in float16, float32 and float64 (the vectors of ADAM-DTYPE-1, the probe, the API checks).
DYADIC = {"learning_rate": 2.0**-7, "beta_1": 0.875, "beta_2": 1.0 - 2.0**-10, "epsilon": 2.0**-23}


def variable_dtypes(record: dict, dtype: str) -> dict[str, str]:
    """The dtype of every variable of a vector run in ``dtype``: the variable's own where it has one (a ``mixed``
    vector, ADAM-DTYPE-2), the run's otherwise."""
    return {name: v.get("dtype", dtype) for name, v in record["variables"].items()}


@functools.lru_cache(maxsize=None)
def finfo(dtype: str) -> Any:
    """``ml_dtypes.finfo`` of a dtype name (bfloat16 included)."""
    return ml_dtypes.finfo(NUMPY_DTYPES[dtype])


def rounded(x: float, dtype: str) -> float:
    """``x`` rounded to ``dtype``, as a Python float."""
    return float(np.float64(x).astype(NUMPY_DTYPES[dtype]))


def exact_in(values: Any, dtypes: list[str] | tuple[str, ...]) -> np.ndarray:
    """Round ``values`` through every listed dtype so the result is exact in each of them."""
    out = np.asarray(values, dtype=np.float64)
    while True:  # repeat: rounding to one dtype can move a value off another's grid (subnormals)
        before = out
        for name in dtypes:
            out = out.astype(NUMPY_DTYPES[name]).astype(np.float64)
        if np.array_equal(out, before):
            return out


def is_exact_in(values: np.ndarray, dtype: str) -> bool:
    """Whether every value is exactly representable in ``dtype``."""
    return bool(np.array_equal(values.astype(NUMPY_DTYPES[dtype]).astype(np.float64), values))
