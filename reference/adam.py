"""The oracle: ``tf.keras.optimizers.Adam`` (TF 2.0) clause by clause, in float64.

Every function below implements one clause of ``spec/adam.md`` and names it.
The arithmetic is written in the spec's order and never rearranged; clarity
beats speed.  All values are float64 NumPy arrays or Python floats.

    t       = iterations + 1                                   ADAM-STEP-1
    alpha   = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)        ADAM-UPDATE-1
    m       = beta_1 * m + (1 - beta_1) * g                     ADAM-UPDATE-2
    v       = beta_2 * v + (1 - beta_2) * g * g                 ADAM-UPDATE-3
    vhat    = max(vhat, v)               (amsgrad only)         ADAM-AMSGRAD-1
    var     = var - (alpha * m) / (sqrt(v or vhat) + epsilon)   ADAM-UPDATE-4

Warning: ``epsilon`` is the paper's "epsilon hat": it is added to the
*uncorrected* ``sqrt(v)``.  PyTorch and optax add it to the bias-corrected
``sqrt(v / (1 - beta_2**t))`` instead (Algorithm 1 of the paper).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable, Mapping, Sequence

import numpy as np

#: ADAM-DEFAULTS-1: the constructor defaults of the page.
DEFAULTS: dict[str, Any] = {
    "learning_rate": 0.001,
    "beta_1": 0.9,
    "beta_2": 0.999,
    "epsilon": 1e-7,
    "amsgrad": False,
    "name": "Adam",
}

#: ADAM-TF2-EPS-1: what TF 2.0 substitutes for a falsy epsilon (``backend.epsilon()``).
BACKEND_EPSILON = 1e-7


@dataclass(frozen=True)
class IndexedSlices:
    """A sparse gradient, shaped like ``tf.IndexedSlices``.

    ``values[k]`` is the gradient of row ``indices[k]`` of a variable of shape
    ``dense_shape``.  Indices may repeat (ADAM-SPARSE-1).
    """

    values: np.ndarray
    indices: np.ndarray
    dense_shape: tuple[int, ...]


@dataclass(frozen=True)
class Hyperparameters:
    """The hyperparameter values in force for one ``apply_gradients`` call."""

    learning_rate: float
    beta_1: float
    beta_2: float
    epsilon: float


@dataclass(frozen=True)
class Slots:
    """Adam's per-variable state: first moment, second moment, AMSGrad max (or None)."""

    m: np.ndarray
    v: np.ndarray
    vhat: np.ndarray | None


# --- ADAM-STEP / ADAM-UPDATE: one dense step ---------------------------------------


def local_step(iterations: int) -> int:
    """ADAM-STEP-1: the step used for bias correction is ``iterations + 1``."""
    return iterations + 1


def beta_power(beta: float, t: int) -> float:
    """ADAM-UPDATE-1: ``beta**t`` with the *current* beta (never a running product).

    Formed exactly as a fraction and rounded once, so the oracle is the same
    float64 value on every platform (libm ``pow`` may differ by an ulp).
    """
    return float(Fraction(beta) ** t)


def bias_correction(beta: float, t: int) -> float:
    """ADAM-UPDATE-1: ``1 - beta**t``, formed exactly and rounded once.

    In floating point, 1 - beta**t cancels when t * (1 - beta) is small and
    magnifies the rounding of beta**t by beta**t / (1 - beta**t): over a
    thousand ulps for beta_2 = 0.9999 at t = 3.  The oracle avoids it.
    """
    return float(1 - Fraction(beta) ** t)


def bias_corrected_lr(learning_rate: float, beta_1: float, beta_2: float, t: int) -> float:
    """ADAM-UPDATE-1: ``alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)``."""
    return learning_rate * math.sqrt(bias_correction(beta_2, t)) / bias_correction(beta_1, t)


def update_m(m: np.ndarray, g: np.ndarray, beta_1: float) -> np.ndarray:
    """ADAM-UPDATE-2: ``m = beta_1 * m + (1 - beta_1) * g``."""
    return beta_1 * m + (1.0 - beta_1) * g


def update_v(v: np.ndarray, g: np.ndarray, beta_2: float) -> np.ndarray:
    """ADAM-UPDATE-3: ``v = beta_2 * v + (1 - beta_2) * g * g``."""
    return beta_2 * v + (1.0 - beta_2) * (g * g)


def update_vhat(vhat: np.ndarray, v: np.ndarray) -> np.ndarray:
    """ADAM-AMSGRAD-1: ``vhat = max(vhat, v)`` over the raw v, after v is updated."""
    return np.maximum(vhat, v)


def update_variable(
    var: np.ndarray, alpha: float, m: np.ndarray, v: np.ndarray, epsilon: float
) -> np.ndarray:
    """ADAM-UPDATE-4: ``var = var - (alpha * m) / (sqrt(v) + epsilon)``.

    ``v`` is the AMSGrad ``vhat`` when amsgrad is on (ADAM-AMSGRAD-2).  An infinite gradient gives
    Inf / Inf = NaN in its own element: that is the specified result (ADAM-UPDATE-5), not a warning.
    """
    with np.errstate(invalid="ignore"):
        return var - (alpha * m) / (np.sqrt(v) + epsilon)


# --- ADAM-SPARSE: IndexedSlices -----------------------------------------------------


def dense_gradient(grad: Any, shape: Sequence[int]) -> np.ndarray:
    """ADAM-SPARSE-1/2: the dense gradient an IndexedSlices stands for.

    Duplicate indices are summed first, in order of appearance; rows with no
    index get a zero gradient, so the whole of m and v decays and every row of
    the variable moves (the sparse path is dense-equivalent, not lazy).
    Anything with ``.values``/``.indices``/``.dense_shape`` counts as sparse.
    """
    if not hasattr(grad, "indices"):
        return np.asarray(grad, dtype=np.float64)
    dense = np.zeros(tuple(shape), dtype=np.float64)
    np.add.at(dense, np.asarray(grad.indices).astype(np.int64), np.asarray(grad.values, dtype=np.float64))
    return dense


# --- ADAM-TF2-CLIP-2: what minimize and get_gradients do to a gradient first --------------


def clip_by_norm(g: np.ndarray, clipnorm: float) -> np.ndarray:
    """ADAM-TF2-CLIP-2: ``g * clipnorm / max(norm(g), clipnorm)`` for one gradient tensor.

    ``norm(g)`` is the L2 norm of this tensor alone (not of all gradients together), so a
    tensor already inside the ball comes back as ``g * clipnorm / clipnorm``; a zero tensor stays zero.
    """
    norm = math.sqrt(float(np.sum(g * g)))
    return g * clipnorm / max(norm, clipnorm)


def clip_by_value(g: np.ndarray, clipvalue: float) -> np.ndarray:
    """ADAM-TF2-CLIP-2: every element limited to ``[-clipvalue, clipvalue]``."""
    return np.minimum(np.maximum(g, -clipvalue), clipvalue)


def clip_gradient(g: np.ndarray, clipnorm: float | None = None, clipvalue: float | None = None) -> np.ndarray:
    """ADAM-TF2-CLIP-2: the norm first, then the value, each only when set."""
    if clipnorm is not None:
        g = clip_by_norm(g, clipnorm)
    if clipvalue is not None:
        g = clip_by_value(g, clipvalue)
    return g


def global_norm(grads: Sequence[np.ndarray]) -> float:
    """ADAM-CLIP-APPLY-1: ``sqrt(sum over all tensors of sum(g * g))``, in float64."""
    return math.sqrt(sum(float(np.sum(g * g)) for g in grads))


#: ADAM-CLIP-APPLY-1: the clipping arguments a vector may carry, one at a time (Keras 3 accepts only one).
CLIPPING = ("clipnorm", "global_clipnorm", "clipvalue")


def clip_in_apply(grads: Mapping[Any, np.ndarray], clipnorm: float | None = None,
                  global_clipnorm: float | None = None, clipvalue: float | None = None) -> dict[Any, np.ndarray]:
    """ADAM-CLIP-APPLY-1: the dense gradients of one ``apply_gradients`` call clipped as TF 2.2+ and Keras 3 clip them
    there, once, on the aggregated gradient: ``clipnorm`` by each tensor's own norm (ADAM-TF2-CLIP-2's formula),
    ``global_clipnorm`` by the norm of all the call's tensors together, ``clipvalue`` element by element.  Norms
    are computed in float64 on the given values (the vector's, exact in its dtype)."""
    out = {k: np.asarray(g, dtype=np.float64) for k, g in grads.items()}
    if clipnorm is not None:
        out = {k: clip_by_norm(g, clipnorm) for k, g in out.items()}
    if global_clipnorm is not None:
        norm = global_norm(list(out.values()))
        out = {k: g * global_clipnorm / max(norm, global_clipnorm) for k, g in out.items()}
    if clipvalue is not None:
        out = {k: clip_by_value(g, clipvalue) for k, g in out.items()}
    return out


# --- ADAM-HYPER: hyperparameter resolution ------------------------------------------


class LearningRateSchedule:
    """Base class of a learning-rate schedule: called with the 0-based iterations (ADAM-HYPER-3).

    A NumPy port recognises a schedule by ``isinstance`` (as TF does with its own
    ``LearningRateSchedule``); any other callable is a zero-argument callable.
    """

    def __call__(self, step: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError


def decayed_lr(learning_rate: float, decay: float, iterations: int) -> float:
    """ADAM-HYPER-4: legacy ``decay``: ``lr / (1 + decay * iterations)``, 0-based iterations."""
    if decay > 0.0:
        return learning_rate / (1.0 + decay * iterations)
    return learning_rate


def stored_hyperparameter(value: float) -> float:
    """ADAM-TF2-HYPER-1: TF 2.0 stores a Python-float hyperparameter as float32."""
    return float(np.float32(value))


def resolve(value: float | Callable[[], float]) -> float:
    """ADAM-HYPER-1: a zero-argument callable is called anew at every ``apply_gradients``."""
    return float(value() if callable(value) else value)


def effective_epsilon(epsilon: float | None) -> float:
    """ADAM-TF2-EPS-1: a falsy epsilon (0 or None) becomes ``backend.epsilon()``, 1e-7."""
    return epsilon or BACKEND_EPSILON


def call_hyperparameters(
    learning_rate: float,
    beta_1: float,
    beta_2: float,
    epsilon: float,
    decay: float,
    iterations: int,
    *,
    float32_storage: bool = False,
    dtype: Any = None,
) -> Hyperparameters:
    """The hyperparameters one ``apply_gradients`` call uses, from the numbers in force at it.

    The arguments are numbers: a callable already called (ADAM-HYPER-1), a schedule already evaluated at the
    0-based ``iterations`` (ADAM-HYPER-3).  With ``float32_storage`` the learning rate, the betas and decay
    are stored as float32 first (ADAM-TF2-HYPER-1); with a ``dtype`` every value is then cast to the
    variable's dtype (ADAM-DTYPE-1), and the decayed learning rate (ADAM-HYPER-4) is rounded to it too, as
    TF 2.0 computes ``lr / (1 + decay * iterations)`` in the variable's dtype.  The exact oracle uses
    neither: its hyperparameters are exact in every dtype a core vector lists.
    """
    if float32_storage:
        learning_rate, beta_1, beta_2, decay = map(stored_hyperparameter, (learning_rate, beta_1, beta_2, decay))

    def cast(x: float) -> float:
        return x if dtype is None else float(np.float64(x).astype(dtype))

    learning_rate, beta_1, beta_2, epsilon, decay = map(cast, (learning_rate, beta_1, beta_2, epsilon, decay))
    return Hyperparameters(cast(decayed_lr(learning_rate, decay, iterations)), beta_1, beta_2, epsilon)


# --- one step over several variables ------------------------------------------------


def init_slots(shape: Sequence[int], amsgrad: bool) -> Slots:
    """ADAM-INIT-1: m, v (and vhat) start at zero, shaped like the variable."""
    zeros = np.zeros(tuple(shape), dtype=np.float64)
    return Slots(m=zeros, v=zeros.copy(), vhat=zeros.copy() if amsgrad else None)


def step(
    var: np.ndarray, grad: np.ndarray, slots: Slots, hp: Hyperparameters, t: int
) -> tuple[np.ndarray, Slots]:
    """One Adam update of one variable with a dense float64 gradient; pure."""
    alpha = bias_corrected_lr(hp.learning_rate, hp.beta_1, hp.beta_2, t)
    m = update_m(slots.m, grad, hp.beta_1)
    v = update_v(slots.v, grad, hp.beta_2)
    if slots.vhat is None:
        return update_variable(var, alpha, m, v, hp.epsilon), Slots(m, v, None)
    vhat = update_vhat(slots.vhat, v)
    return update_variable(var, alpha, m, vhat, hp.epsilon), Slots(m, v, vhat)


def apply_gradients(
    variables: Mapping[str, np.ndarray],
    slots: Mapping[str, Slots],
    grads: Mapping[str, Any],
    hp: Hyperparameters,
    iterations: int,
    amsgrad: bool,
) -> tuple[dict[str, np.ndarray], dict[str, Slots], int]:
    """One ``apply_gradients`` call; pure.

    ``grads`` maps variable names to a dense array, an IndexedSlices, or None.
    None gradients are skipped (ADAM-ITER-2); all None raises ValueError
    (ADAM-ITER-3).  Every variable sees the same t (ADAM-MULTI-1), slots of a
    variable seen for the first time are created now (ADAM-MULTI-2), and
    iterations advances once per call (ADAM-ITER-1).
    """
    present = {name: g for name, g in grads.items() if g is not None}
    if not present:
        raise ValueError("No gradients provided for any variable.")
    t = local_step(iterations)
    new_vars, new_slots = dict(variables), dict(slots)
    for name, g in present.items():
        var = variables[name]
        state = slots.get(name) or init_slots(var.shape, amsgrad)
        new_vars[name], new_slots[name] = step(var, dense_gradient(g, var.shape), state, hp, t)
    return new_vars, new_slots, iterations + 1
