"""The error model of ``spec/adam.md`` section E: how far a conforming candidate may be from the oracle.

``ErrorModel`` walks the oracle's trajectory of one vector, one step at a
time, and returns for every variable and tensor the element-wise bound of the
error that rounding in the candidate's dtype can cause (E-1..E-7), plus the
oracle's own float64 rounding, times the safety factor ``K``.  It holds only
the current step's arrays, so it scales to large vectors.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from conformance.judge import compiled
from conformance.dtypes import FORMATS, NUMPY_DTYPES, finfo
from reference import adam

K = 2.0  # safety factor on a bound that is first order in u for the moments and alpha (spec E)
FIELDS = ("variable", "m", "v", "vhat")


def ulp_of(x: float, dtype: str) -> float:
    """The spacing of ``dtype`` at |x|, for one value."""
    fmt = FORMATS[dtype]
    exp = math.frexp(abs(x))[1] if math.isfinite(x) else fmt.emin + 1
    return math.ldexp(1.0, max(exp - 1, fmt.emin) - (fmt.p - 1))


@functools.lru_cache(maxsize=4096)
def rounding_error(x: float, dtype: str) -> float:
    """|fl(x) - x| for x rounded to ``dtype`` (zero when x is exact there)."""
    return abs(float(np.float64(x).astype(NUMPY_DTYPES[dtype])) - x)


#: 1 - beta**t, exact and rounded once (reference.adam); the same few values recur across items.
bias_correction = functools.lru_cache(maxsize=4096)(adam.bias_correction)


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
                 initial: dict[str, np.ndarray] | None = None, reuse: bool = False) -> None:
        fmt = FORMATS[dtype]
        self.vector, self.dtype, self.carried, self.ftz = vector, dtype, carried, ftz
        self.u, self.eta, self.tiny = fmt.u, fmt.underflow(ftz), fmt.tiny
        self.largest = float(finfo(dtype).max)
        # The oracle rounds too (float64, gradual underflow).  Every term of the model is proportional to u or eta
        # or of higher order, so its bound is rho times the candidate's (spec E-7).
        self.rho = 1.0 if dtype == "float64" else FORMATS["float64"].u / fmt.u
        self.amsgrad = vector.amsgrad
        # reuse=True: each step's errors overwrite the previous step's arrays (they are element-wise functions of
        # them), which spares large vectors a fresh allocation per step; the caller must not keep them.
        self.reuse, self._buffers = reuse, {}
        # Large vectors take the compiled twin of _chunk (conformance/judge/compiled.py), proven bit-identical to it.
        self.compiled = reuse and vector.size >= compiled.MIN_ELEMENTS and compiled.available(dtype)
        initial = initial if initial is not None else vector.initial()
        self.previous: dict[str, dict[str, Any]] = {n: {"variable": x, "m": None, "v": None, "vhat": None}
                                                    for n, x in initial.items()}
        # The errors brought into the first step are made by it (``_start``): a driver that evaluates the model
        # elsewhere (conformance/drive/large.py) uses this object for its scalars and never pays for them.
        self.err: dict[str, dict[str, Any]] = {}

    def _load_error(self, x: np.ndarray | None) -> Any:
        """The error of handing the candidate ``x`` in its dtype: the rounding, and with FTZ a subnormal read as 0."""
        if x is None:
            return 0.0
        with np.errstate(over="ignore", invalid="ignore"):  # past the dtype's range: loaded as +-Inf, error Inf
            err = np.abs(x.astype(NUMPY_DTYPES[self.dtype]).astype(np.float64) - x)
        if self.ftz:
            err = np.where(np.abs(x) < self.tiny, np.abs(x), err)
        return err

    def _gradient_error(self, g: Any, dense: np.ndarray) -> Any:
        """Summing k duplicate values of one row in the dtype: (k - 1) * u * sum |g_i| (ADAM-SPARSE-1)."""
        err: Any = 0.0
        if hasattr(g, "indices"):
            count, total = np.zeros(dense.shape), np.zeros(dense.shape)
            idx = np.asarray(g.indices).astype(np.int64)
            values = np.abs(np.asarray(g.values, dtype=np.float64))
            np.add.at(count, idx, 1.0)
            np.add.at(total, idx, values)
            with np.errstate(invalid="ignore"):  # an infinite value: its row is lost anyway (ADAM-UPDATE-5)
                err = np.maximum(count - 1.0, 0.0) * (self.u * total + self.eta)
        return err

    @property
    def scale(self) -> float:
        """E-7: allowed |candidate - expected| = scale * e, the oracle's own rounding and the safety factor included."""
        return K * (1.0 + self.rho)

    def _start(self) -> None:
        """The errors brought into the first step: handing the candidate the initial values in its dtype."""
        self.err = {n: {"variable": self._load_error(p["variable"]), "m": 0.0, "v": 0.0, "vhat": 0.0}
                    for n, p in self.previous.items()}

    def step(self, s: int, grads: dict[str, Any], state: dict) -> dict[str, dict[str, np.ndarray | None]]:
        """The model errors e after step ``s`` (0-based), per variable and tensor; allowed = ``scale`` * e."""
        if s == 0:
            self._start()
        k = self.scalars(s)
        loaded = not self.carried and s > 0  # single-step: the step starts from the oracle's state, rounded
        if loaded:
            self.err = {n: {f: 0.0 for f in FIELDS} for n in self.previous}
        out: dict[str, dict[str, np.ndarray | None]] = {}
        for name, now in ((n, v) for n, v in state.items() if n in self.previous):  # this model's variables
            before, e = self.previous[name], self.err[name]
            shape = now["variable"].shape
            g_obj = grads.get(name)
            if g_obj is None or now["m"] is None:  # not updated by this call: its error is what it carried
                if loaded:
                    e = self.err[name] = {f: self._load_error(before.get(f)) for f in FIELDS}
                out[name] = {f: (None if now.get(f) is None else np.asarray(e.get(f, 0.0), np.float64))
                             for f in FIELDS if f in now}
            else:
                g = adam.dense_gradient(g_obj, shape)
                wanted = [f for f in FIELDS if f != "vhat" or self.amsgrad]
                new = self._buffers.get(name) if self.reuse else None
                if new is None:
                    new = {f: np.empty(shape) for f in wanted}
                    if self.reuse:
                        self._buffers[name] = new
                inputs = {"g": g, "e_g": self._gradient_error(g_obj, g), "m0": before["m"], "v0": before["v"],
                          "m1": now["m"], "v1": now["v"], "w": now["vhat"] if self.amsgrad else now["v"],
                          "x1": now["variable"], **{f"e_{f}": e.get(f, 0.0) for f in FIELDS}}
                # Single-step: the errors brought in are the rounding of the loaded state, made slice by slice.
                state0 = {f: before.get(f) for f in FIELDS} if loaded else None
                if self.compiled:
                    compiled.model_step(self, k, inputs, state0, new, int(np.prod(shape, dtype=np.int64)), CHUNK)
                    out[name] = self.err[name] = new
                    self.previous[name] = now
                    continue
                for part in chunks(int(np.prod(shape, dtype=np.int64))):
                    view = {key: _flat(x, part) for key, x in inputs.items()}
                    if state0 is not None:
                        view.update({f"e_{f}": self._load_error(_flat_or_none(x, part)) for f, x in state0.items()})
                    for f, x in self._chunk(k, **view).items():
                        if f in new:
                            new[f].reshape(-1)[part] = x
                out[name] = self.err[name] = new
            self.previous[name] = now
        return out

    def scalars(self, s: int) -> "_Step":
        """The scalars of step ``s``'s model (0-based): the hyperparameters, their rounding, alpha and E-4."""
        u, t = self.u, s + 1
        hp = self.vector.hyperparameters(s)
        lr, b1, b2, eps = hp["learning_rate"], hp["beta_1"], hp["beta_2"], hp["epsilon"]
        d_lr, d_b1, d_b2, d_eps = (rounding_error(x, self.dtype) for x in (lr, b1, b2, eps))
        c1, c2 = bias_correction(b1, t), bias_correction(b2, t)
        # E-4: relative error of alpha.  pow() is within one ulp (2u) of beta**t, and 1 - beta**t turns that absolute
        # error into the relative error 2u * beta**t / (1 - beta**t): the cancellation.  Hyperparameters rounded to the
        # dtype contribute through d(beta**t)/d(beta) = t * beta**(t - 1).
        r_alpha = (8 * u + _div(d_lr, lr) + _div(t * d_b1 * b1 ** (t - 1), c1) + _div(t * d_b2 * b2 ** (t - 1), 2 * c2)
                   + _div(2 * u * (1 - c1), c1) + _div(u * (1 - c2), c2))
        return _Step(b1, b2, eps, d_b1, d_b2, d_eps, alpha=_div(lr * math.sqrt(c2), c1), r_alpha=r_alpha,
                     eps_lo=max(eps - d_eps, 0.0) * (1 - u))  # the smallest value the candidate's epsilon can have

    def _chunk(self, k: "_Step", g: Any, e_g: Any, m0: Any, v0: Any, m1: Any, v1: Any, w: Any, x1: Any,
               e_variable: Any, e_m: Any, e_v: Any, e_vhat: Any) -> dict[str, Any]:
        """E-1..E-6 on one slice of one variable (flat arrays, or scalars where a term is the same everywhere)."""
        u, eta = self.u, self.eta
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            ag, am0, av0 = np.abs(g), np.abs(m0), np.abs(v0)
            if self.ftz:  # denormals-are-zero: a subnormal gradient is read as 0
                e_g = e_g + np.where(ag < self.tiny, ag, 0.0)
            # E-1, E-2: propagated error, rounding of the hyperparameters, and four or five roundings in any
            # conforming order (beta*m + (1-beta)*g, or m + (g - m)*(1-beta)).  Zero terms are skipped.
            em = k.b1 * e_m + 3 * u * (am0 + np.abs(m1)) + (3 * u * (1 - k.b1)) * ag + 4 * eta
            ev = k.b2 * e_v + 4 * u * (av0 + v1) + (4 * u * (1 - k.b2)) * (g * g) + 5 * eta
            if np.any(e_g):
                em = em + (1 - k.b1) * e_g
                ev = ev + (1 - k.b2) * (2 * ag + e_g) * e_g
            if k.d_b1:
                em = em + k.d_b1 * (am0 + ag)
            if k.d_b2:
                ev = ev + k.d_b2 * (av0 + g * g)
            eh = np.maximum(e_vhat, ev) if self.amsgrad else 0.0  # E-3
            ew = eh if self.amsgrad else ev
            # E-5: |sqrt(w') - sqrt(w)| <= e_w / (sqrt(w) + sqrt(w - e_w)), and never more than sqrt(e_w).
            root = np.sqrt(w)
            e_root = np.minimum(ew / (root + np.sqrt(np.maximum(w - ew, 0.0))), np.sqrt(ew))
            e_root = np.where(ew == 0, 0.0, e_root)
            den = root + k.eps
            e_den = e_root + 2 * u * den + (k.d_eps + 2 * eta)
            den_lo = np.maximum(den - e_den, k.eps_lo)  # the smallest denominator the candidate can have computed
            # E-6: the step alpha * m / D, then the variable.
            delta = k.alpha * np.abs(m1) / den
            step = np.where(delta == 0, 0.0, delta * ((k.r_alpha + 3 * u) + e_den / den_lo))
            step = step + np.where(em == 0, 0.0, k.alpha * em / den_lo)
            ex = e_variable + step + u * np.abs(x1) + 3 * eta
            # An intermediate that a conforming order forms (g*g, m*alpha, g - m) past the largest finite value
            # overflows: from there on the element is unconstrained (Inf, or NaN after it).
            over = (ag * ag >= self.largest) | (k.alpha * np.abs(m1) >= self.largest) | (ag + am0 >= self.largest)
            # An infinite error brought in meets a zero coefficient (beta_2 = 0) or another infinity as NaN: the
            # element was unconstrained already, and stays so.
            over |= np.isnan(ex) | np.isnan(em) | np.isnan(ev)
            if np.any(over):
                em, ev, ex = (np.where(over, np.inf, x) for x in (em, ev, ex))
                eh = np.where(over, np.inf, eh) if self.amsgrad else eh
        return {"variable": ex, "m": em, "v": ev, "vhat": eh}


class MixedErrorModel:
    """E-1..E-7 for a vector whose variables have dtypes of their own (ADAM-DTYPE-2): each variable's bound is that of
    its dtype, as if it were alone in the call (one ``ErrorModel`` per dtype, over its variables).

    The errors it returns are already the allowed errors (``scale`` is 1): the factor of E-7 depends on the dtype.
    """

    scale = 1.0

    def __init__(self, vector: Any, dtypes: dict[str, str], *, carried: bool, ftz: dict[str, bool],
                 initial: dict[str, np.ndarray]) -> None:
        self.models = [ErrorModel(vector, d, carried=carried, ftz=ftz[d],
                                  initial={n: initial[n] for n, own in dtypes.items() if own == d})
                       for d in dict.fromkeys(dtypes.values())]

    def step(self, s: int, grads: dict[str, Any], state: dict) -> dict[str, dict[str, np.ndarray | None]]:
        """Every variable's allowed errors after step ``s`` (0-based): its dtype's ``scale`` times its model's e."""
        allowed = {name: {f: None if e is None else model.scale * e for f, e in fields.items()}
                   for model in self.models for name, fields in model.step(s, grads, state).items()}
        return {name: allowed[name] for name in state if name in allowed}  # in the vector's order


@dataclass(frozen=True)
class _Step:
    """The scalars of one step's model."""

    b1: float
    b2: float
    eps: float
    d_b1: float
    d_b2: float
    d_eps: float
    alpha: float
    r_alpha: float
    eps_lo: float


#: Elements per slice: the model's temporaries stay in cache, and large vectors need no full-size temporaries.
CHUNK = 1 << 15


def chunks(n: int) -> list[slice]:
    """Slices of at most CHUNK elements covering range(n)."""
    return [slice(i, min(i + CHUNK, n)) for i in range(0, max(n, 1), CHUNK)]


def _flat_or_none(x: Any, part: slice) -> Any:
    return None if x is None else _flat(x, part)


def _flat(x: Any, part: slice) -> Any:
    """A slice of an array's flat view; None counts as 0 (a slot not created yet); scalars stay scalars."""
    if x is None:
        return 0.0
    return x.reshape(-1)[part] if isinstance(x, np.ndarray) and x.ndim else x


def model_bound(vector: Any, dtype: str, carried: bool = True) -> list[dict]:
    """E-1..E-6 for one format alone (no safety factor, no oracle term): what rounding in ``dtype`` can cause."""
    model = ErrorModel(vector, dtype, carried=carried)
    return [model.step(s, vector.gradients(s), state) for s, state in enumerate(vector.states())]
