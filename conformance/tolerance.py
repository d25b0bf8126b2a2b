"""The error model of ``spec/adam.md`` section E: how far a conforming candidate may be from the oracle.

``ErrorModel`` walks the oracle's trajectory of one vector, one step at a
time, and returns for every variable and tensor the element-wise bound of the
error that rounding in the candidate's dtype can cause (E-1..E-7), plus the
oracle's own float64 rounding, times the safety factor ``K``.  It holds only
the current step's arrays, so it scales to large vectors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from reference import adam
from vectors.scenarios import NUMPY_DTYPES

K = 2.0  # safety factor on a bound that is first order in u for the moments and alpha (spec E)
FIELDS = ("variable", "m", "v", "vhat")


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

    def underflow(self, ftz: bool) -> float:
        """The absolute error of one operation whose result underflows.

        Gradual underflow: half the smallest subnormal.  Flush-to-zero (and
        denormals-are-zero): up to the smallest normal, since any subnormal
        result or input may become 0.
        """
        return self.tiny if ftz else 2.0 ** (self.emin - self.p)


FORMATS = {"float64": Format(53, -1022), "float32": Format(24, -126), "float16": Format(11, -14), "bfloat16": Format(8, -126)}


def ulp(x: np.ndarray, dtype: str) -> np.ndarray:
    """The spacing of ``dtype`` at |x| (the subnormal spacing at and below the smallest normal)."""
    fmt = FORMATS[dtype]
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        _, exp = np.frexp(np.abs(x))
    exp = np.where(np.isfinite(x), np.maximum(exp - 1, fmt.emin), fmt.emin)
    return np.ldexp(1.0, exp - (fmt.p - 1))


def rounding_error(x: float, dtype: str) -> float:
    """|fl(x) - x| for x rounded to ``dtype`` (zero when x is exact there)."""
    return abs(float(np.float64(x).astype(NUMPY_DTYPES[dtype])) - x)


def bits_of_agreement(abs_err: float, expected: float) -> float:
    """-log2 of the relative error: how many leading bits agree (53 at most for float64)."""
    if abs_err == 0:
        return 53.0
    if expected == 0 or not math.isfinite(abs_err):
        return 0.0
    return max(0.0, -math.log2(abs_err / abs(expected)))


def _div(a: float, b: float) -> float:
    """a / b for the scalar terms, with 0 / 0 = 0 and a / 0 = inf (a bias correction of exactly zero)."""
    if b == 0:
        return 0.0 if a == 0 else math.inf
    return a / b


class ErrorModel:
    """E-1..E-7 along one vector's oracle trajectory, for one candidate dtype and one mode.

    ``carried=True`` is trajectory mode: errors accumulate from step to step.
    ``carried=False`` is single-step mode: before each step the candidate was
    given the oracle's previous state rounded to its dtype, so the only error
    brought into a step is that rounding.  ``ftz`` says that the candidate's
    framework flushes subnormals to zero (measured by its adapter).
    """

    def __init__(self, vector: Any, dtype: str, *, carried: bool, ftz: bool = False,
                 initial: dict[str, np.ndarray] | None = None) -> None:
        fmt = FORMATS[dtype]
        self.vector, self.dtype, self.carried, self.ftz = vector, dtype, carried, ftz
        self.u, self.eta, self.tiny = fmt.u, fmt.underflow(ftz), fmt.tiny
        # The oracle rounds too (float64, gradual underflow).  Every term of the model is proportional to u or eta
        # or of higher order, so its bound is rho times the candidate's (spec E-7).
        self.rho = 1.0 if dtype == "float64" else FORMATS["float64"].u / fmt.u
        self.amsgrad = vector.record["amsgrad"]
        initial = initial if initial is not None else vector.initial()
        self.previous: dict[str, dict[str, Any]] = {n: {"variable": x, "m": None, "v": None, "vhat": None}
                                                    for n, x in initial.items()}
        self.err: dict[str, dict[str, Any]] = {n: {"variable": self._load_error(x), "m": 0.0, "v": 0.0, "vhat": 0.0}
                                               for n, x in initial.items()}

    def _load_error(self, x: np.ndarray | None) -> Any:
        """The error of handing the candidate ``x`` in its dtype: the rounding, and with FTZ a subnormal read as 0."""
        if x is None:
            return 0.0
        err = np.abs(x.astype(NUMPY_DTYPES[self.dtype]).astype(np.float64) - x)
        if self.ftz:
            err = np.where(np.abs(x) < self.tiny, np.abs(x), err)
        return err

    def _gradient_error(self, g: Any, dense: np.ndarray) -> Any:
        """Summing k duplicate values of one row in the dtype: (k - 1) * u * sum |g_i| (ADAM-SPARSE-1); FTZ inputs."""
        err: Any = 0.0
        if hasattr(g, "indices"):
            count, total = np.zeros(dense.shape), np.zeros(dense.shape)
            idx = np.asarray(g.indices).astype(np.int64)
            values = np.abs(np.asarray(g.values, dtype=np.float64))
            np.add.at(count, idx, 1.0)
            np.add.at(total, idx, values)
            err = np.maximum(count - 1.0, 0.0) * (self.u * total + self.eta)
        if self.ftz:
            err = err + np.where(np.abs(dense) < self.tiny, np.abs(dense), 0.0)
        return err

    def step(self, s: int, grads: dict[str, Any], state: dict) -> dict[str, dict[str, np.ndarray | None]]:
        """Bounds after step ``s`` (0-based): per variable and tensor, the allowed |candidate - expected|."""
        u, eta, t = self.u, self.eta, s + 1
        hp = self.vector.hyperparameters(s)
        lr, b1, b2, eps = hp["learning_rate"], hp["beta_1"], hp["beta_2"], hp["epsilon"]
        d_lr, d_b1, d_b2, d_eps = (rounding_error(x, self.dtype) for x in (lr, b1, b2, eps))
        c1, c2 = adam.bias_correction(b1, t), adam.bias_correction(b2, t)
        alpha = _div(lr * math.sqrt(c2), c1)
        # E-4: relative error of alpha.  pow() is within one ulp (2u) of beta**t, and 1 - beta**t turns that absolute
        # error into the relative error 2u * beta**t / (1 - beta**t): the cancellation.  Hyperparameters rounded to the
        # dtype contribute through d(beta**t)/d(beta) = t * beta**(t - 1).
        r_alpha = (8 * u + _div(d_lr, lr) + _div(t * d_b1 * b1 ** (t - 1), c1) + _div(t * d_b2 * b2 ** (t - 1), 2 * c2)
                   + _div(2 * u * (1 - c1), c1) + _div(u * (1 - c2), c2))
        eps_lo = max(eps - d_eps, 0.0) * (1 - u)  # the smallest value the candidate's epsilon can have
        if not self.carried and s > 0:
            self.err = {n: {f: self._load_error(prev.get(f)) for f in FIELDS} for n, prev in self.previous.items()}
        bounds: dict[str, dict[str, np.ndarray | None]] = {}
        scale = K * (1.0 + self.rho)
        for name, now in ((n, v) for n, v in state.items() if n != "iterations"):
            before, e = self.previous[name], self.err[name]
            shape = now["variable"].shape
            g_obj = grads.get(name)
            if g_obj is None or now["m"] is None:  # not updated by this call: its error is what it carried
                bounds[name] = {f: (None if now.get(f) is None else np.broadcast_to(scale * np.asarray(e[f]), shape))
                                for f in FIELDS if f in now}
                self.previous[name] = now
                continue
            g = adam.dense_gradient(g_obj, shape)
            e_g = self._gradient_error(g_obj, g)
            m0 = before["m"] if before["m"] is not None else 0.0
            v0 = before["v"] if before["v"] is not None else 0.0
            m1, v1, x1 = now["m"], now["v"], now["variable"]
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                ag = np.abs(g)
                # E-1, E-2: propagated error, hyperparameter rounding, and four or five roundings in any conforming
                # order (beta*m + (1-beta)*g, or m + (g - m)*(1-beta)).
                e_m = (b1 * e["m"] + (1 - b1) * e_g + 3 * u * (np.abs(m0) + (1 - b1) * ag + np.abs(m1))
                       + d_b1 * (np.abs(m0) + ag) + 4 * eta)
                e_v = (b2 * e["v"] + (1 - b2) * (2 * ag * e_g + e_g * e_g) + 4 * u * (v0 + (1 - b2) * g * g + v1)
                       + d_b2 * (v0 + g * g) + 5 * eta)
                if self.amsgrad:
                    e_h = np.maximum(e["vhat"], e_v)  # E-3
                    w, e_w = now["vhat"], e_h
                else:
                    e_h, w, e_w = 0.0, v1, e_v
                # E-5: the denominator.  |sqrt(w') - sqrt(w)| <= e_w / (sqrt(w) + sqrt(w - e_w)), and never more
                # than sqrt(e_w).
                root = np.sqrt(w)
                e_root = np.minimum(e_w / (root + np.sqrt(np.maximum(w - e_w, 0.0))), np.sqrt(e_w))
                e_root = np.where(e_w == 0, 0.0, e_root)
                e_den = e_root + 2 * u * (root + eps) + d_eps + 2 * eta
                den = root + eps
                den_lo = np.maximum(den - e_den, eps_lo)  # the smallest denominator the candidate can compute
                # E-6: the step alpha * m / D, and the variable.
                delta = alpha * np.abs(m1) / den
                step_err = np.where(delta == 0, 0.0, delta * (r_alpha + 3 * u + e_den / den_lo))
                step_err = step_err + np.where(e_m == 0, 0.0, alpha * e_m / den_lo)
                e_x = e["variable"] + step_err + u * np.abs(x1) + 3 * eta
            self.err[name] = {"variable": e_x, "m": e_m, "v": e_v, "vhat": e_h}
            bounds[name] = {"variable": scale * e_x, "m": scale * e_m, "v": scale * e_v}
            if self.amsgrad:
                bounds[name]["vhat"] = scale * np.broadcast_to(e_h, shape)
            self.previous[name] = now
        return bounds


def trajectory_bounds(vector: Any, dtype: str, carried: bool = True, ftz: bool = False) -> list[dict]:
    """All steps' bounds of a (small) vector at once."""
    model = ErrorModel(vector, dtype, carried=carried, ftz=ftz)
    return [model.step(s, vector.gradients(s), state) for s, state in enumerate(vector.states())]


def model_bound(vector: Any, dtype: str, carried: bool = True) -> list[dict]:
    """E-1..E-6 for one format alone (no safety factor, no oracle term): what rounding in ``dtype`` can cause."""
    factor = K * (1.0 + (1.0 if dtype == "float64" else FORMATS["float64"].u / FORMATS[dtype].u))
    return [{n: {f: (None if b is None else b / factor) for f, b in fields.items()} for n, fields in step.items()}
            for step in trajectory_bounds(vector, dtype, carried)]
