"""The error model of ``spec/adam.md`` section E: how far a conforming candidate may be from the oracle.

``bounds`` walks the oracle's trajectory of a vector and returns, for every
step, variable and tensor, the element-wise first-order bound of the error
that rounding in the candidate's dtype can cause (E-1..E-6), plus the
oracle's own float64 rounding, times the safety factor ``K``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from reference import adam
from vectors.generate import gradient_value
from vectors.scenarios import NUMPY_DTYPES

K = 2.0  # safety factor on a first-order bound (spec E)


@dataclass(frozen=True)
class Format:
    """A floating-point format: precision p (bits, with the implicit one) and minimum normal exponent."""

    p: int
    emin: int

    @property
    def u(self) -> float:
        """Unit roundoff, 2**-p."""
        return 2.0**-self.p

    @property
    def eta(self) -> float:
        """Half the smallest subnormal: the error of a result that underflows."""
        return 2.0 ** (self.emin - self.p)


FORMATS = {"float64": Format(53, -1022), "float32": Format(24, -126), "float16": Format(11, -14), "bfloat16": Format(8, -126)}


def ulp(x: np.ndarray, dtype: str) -> np.ndarray:
    """The spacing of ``dtype`` at |x| (the subnormal spacing at and below the smallest normal)."""
    fmt = FORMATS[dtype]
    with np.errstate(divide="ignore", invalid="ignore"):
        _, exp = np.frexp(np.abs(np.asarray(x, dtype=np.float64)))
    exp = np.where(np.isfinite(x), np.maximum(exp - 1, fmt.emin), fmt.emin)
    return np.ldexp(1.0, exp - (fmt.p - 1))


def rounding_error(x: float, dtype: str) -> float:
    """|fl(x) - x| for x rounded to ``dtype`` (zero when x is exact there)."""
    return abs(float(np.float64(x).astype(NUMPY_DTYPES[dtype])) - x)


def _gradient_error(g: object, shape: tuple[int, ...], u: float) -> np.ndarray:
    """Summing k duplicate values of one row in the candidate's dtype: (k - 1) * u * sum |g_i| (ADAM-SPARSE-1)."""
    if not hasattr(g, "indices"):
        return np.zeros(shape)
    count, total = np.zeros(shape), np.zeros(shape)
    idx = np.asarray(g.indices).astype(np.int64)
    np.add.at(count, idx, 1.0)
    np.add.at(total, idx, np.abs(np.asarray(g.values, dtype=np.float64)))
    return np.maximum(count - 1.0, 0.0) * u * total


def _div(a: float, b: float) -> float:
    """a / b, with 0 / 0 = 0 and a / 0 = inf (a bias correction of exactly zero)."""
    if b == 0:
        return 0.0 if a == 0 else math.inf
    return a / b


def _one_format(vector: object, dtype: str, carried: bool) -> list[dict]:
    fmt = FORMATS[dtype]
    u, eta = fmt.u, fmt.eta
    record = vector.record
    amsgrad = record["amsgrad"]
    names = list(record["variables"])
    previous = {n: {"variable": np.asarray(record["variables"][n]["initial"], dtype=np.float64)} for n in names}
    err = {n: {f: 0.0 for f in ("variable", "m", "v", "vhat")} for n in names}
    out = []
    for s, (step, expected) in enumerate(zip(record["steps"], vector.expected)):
        hp = step["hyperparameters"]
        lr, b1, b2, eps = hp["learning_rate"], hp["beta_1"], hp["beta_2"], hp["epsilon"]
        t = s + 1
        d_lr, d_b1, d_b2, d_eps = (rounding_error(x, dtype) for x in (lr, b1, b2, eps))
        p1, p2 = adam.beta_power(b1, t), adam.beta_power(b2, t)
        alpha = adam.bias_corrected_lr(lr, b1, b2, t)
        # E-4: relative error of alpha; beta**t/(1 - beta**t) is the cancellation in 1 - beta**t.
        r_alpha = (8 * u + _div(d_lr, lr) + _div(t * d_b2 * b2 ** (t - 1), 2 * (1 - p2))
                   + _div(t * d_b1 * b1 ** (t - 1), 1 - p1) + 4 * u * (_div(p2, 1 - p2) + _div(p1, 1 - p1)))
        if not carried:
            # Single-step: the candidate starts from the oracle's state rounded to its dtype.
            err = {n: {f: (u * np.abs(previous[n][f]) if previous[n].get(f) is not None else 0.0)
                       for f in ("variable", "m", "v", "vhat")} for n in names}
        bounds = {}
        for n in names:
            now, before, e = expected[n], previous[n], err[n]
            g_spec = step["gradients"].get(n)
            if g_spec is None or now["m"] is None:
                bounds[n] = {f: (None if now.get(f) is None else K * e[f] + 0.0 * now[f]) for f in now}
                previous[n] = now
                continue
            shape = now["variable"].shape
            g_obj = gradient_value(g_spec)
            g = adam.dense_gradient(g_obj, shape)
            e_g = _gradient_error(g_obj, shape, u)
            m0 = before.get("m") if before.get("m") is not None else np.zeros(shape)
            v0 = before.get("v") if before.get("v") is not None else np.zeros(shape)
            m1, v1, x1 = now["m"], now["v"], now["variable"]
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                e_m = (b1 * e["m"] + (1 - b1) * e_g + 3 * u * (np.abs(b1 * m0) + np.abs((1 - b1) * g) + np.abs(m1))
                       + d_b1 * (np.abs(m0) + np.abs(g)) + 3 * eta)  # E-1
                e_v = (b2 * e["v"] + (1 - b2) * 2 * np.abs(g) * e_g + 4 * u * (b2 * v0 + (1 - b2) * g * g + v1)
                       + d_b2 * (v0 + g * g) + 4 * eta)  # E-2
                if amsgrad:
                    e_h = np.maximum(e["vhat"], e_v)  # E-3
                    w, e_w = now["vhat"], e_h
                else:
                    e_h, w, e_w = 0.0, v1, e_v
                root = np.sqrt(w)
                e_root = np.minimum(np.where(w > 0, e_w / (2 * root), np.inf), np.sqrt(e_w))
                e_den = e_root + 2 * u * (root + eps) + d_eps + 2 * eta  # E-5
                den = root + eps
                delta = np.abs(alpha * m1 / den)
                # alpha = 0 (beta_2 rounded to 1) makes delta 0: no step, whatever r_alpha is.
                step_err = np.where(delta == 0, 0.0, delta * (r_alpha + 3 * u) + delta * e_den / den)
                e_x = e["variable"] + step_err + alpha * e_m / den + u * np.abs(x1) + 2 * eta  # E-6
            err[n] = {"variable": e_x, "m": e_m, "v": e_v, "vhat": e_h}
            bounds[n] = {"variable": K * e_x, "m": K * e_m, "v": K * e_v}
            if amsgrad:
                bounds[n]["vhat"] = K * e_h
            previous[n] = now
        out.append(bounds)
    return out


def model_bound(vector: object, dtype: str, carried: bool = True) -> list[dict]:
    """E-1..E-6 for one format without the safety factor: what rounding in ``dtype`` alone can cause."""
    return [{n: {f: (None if b is None else b / K) for f, b in fields.items()} for n, fields in step.items()}
            for step in _one_format(vector, dtype, carried)]


def bounds(vector: object, dtype: str, carried: bool = True) -> list[dict]:
    """Per step, per variable, per tensor: the allowed |candidate - expected|, element-wise.

    ``carried=False`` is single-step mode: the candidate starts every step from
    the oracle's state, so no error is carried over.
    """
    cand = _one_format(vector, dtype, carried)
    oracle = _one_format(vector, "float64", carried) if dtype != "float64" else cand
    total = []
    for c_step, o_step in zip(cand, oracle):
        step = {}
        for n, fields in c_step.items():
            step[n] = {f: (None if b is None else np.asarray(b + (o_step[n][f] if dtype != "float64" else b)))
                       for f, b in fields.items()}
        total.append(step)
    return total


def bits_of_agreement(abs_err: float, expected: float) -> float:
    """-log2 of the relative error: how many leading bits agree (53 at most for float64)."""
    if abs_err == 0:
        return 53.0
    if expected == 0 or not math.isfinite(abs_err):
        return 0.0
    return max(0.0, -math.log2(abs_err / abs(expected)))
