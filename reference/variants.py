"""Known variants of Adam, each a NumPy port that departs from ``reference.Adam`` in exactly one way.

``WRONG`` variants break one clause: the kit's vectors and checks must catch
every one of them (mutation testing), and the diagnosis replays them to name
what a failing candidate implements.  ``CORRECT`` variants only round
differently (another operation order, another working precision): they must
pass everything.  Each class overrides one hook of ``reference.Adam`` and its
docstring says which clause it breaks.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from reference import adam
from reference.port import Adam


def _rows(grad: Any, shape: tuple[int, ...]) -> np.ndarray | None:
    """The rows an IndexedSlices touches, as a boolean mask (None for a dense gradient)."""
    if not hasattr(grad, "indices"):
        return None
    mask = np.zeros(shape[0], dtype=bool)
    mask[np.asarray(grad.indices).astype(np.int64)] = True
    return mask


# --- wrong: the update rule -------------------------------------------------------------


class EpsilonInsideSqrt(Adam):
    """ADAM-UPDATE-4: ``var - alpha * m / sqrt(v + epsilon)``."""

    @staticmethod
    def update_variable(var, alpha, m, v, epsilon):
        with np.errstate(invalid="ignore", divide="ignore"):  # non-finite gradients, as in the reference's own form
            return var - (alpha * m) / np.sqrt(v + epsilon)


class Algorithm1Epsilon(Adam):
    """ADAM-UPDATE-4: epsilon on the bias-corrected root, as torch and optax do (``m_hat / (sqrt(v_hat) + eps)``)."""

    @staticmethod
    def epsilon_hat(hp, t):
        # Algorithm 1's epsilon on sqrt(v_hat) is exactly epsilon * sqrt(1 - beta_2**t) in the epsilon-hat form.
        return hp.epsilon * math.sqrt(1.0 - adam.beta_power(hp.beta_2, t))


class StepOffByOne(Adam):
    """ADAM-STEP-1: bias correction with ``t = iterations + 2``."""

    @staticmethod
    def local_step(iterations):
        return iterations + 2


class NoFirstMomentCorrection(Adam):
    """ADAM-UPDATE-1: ``alpha = lr * sqrt(1 - beta_2**t)`` (no division by 1 - beta_1**t)."""

    @staticmethod
    def bias_corrected_lr(lr, beta_1, beta_2, t):
        return lr * math.sqrt(1.0 - adam.beta_power(beta_2, t))


class NoSecondMomentCorrection(Adam):
    """ADAM-UPDATE-1: ``alpha = lr / (1 - beta_1**t)`` (no sqrt(1 - beta_2**t))."""

    @staticmethod
    def bias_corrected_lr(lr, beta_1, beta_2, t):
        return lr / (1.0 - adam.beta_power(beta_1, t))


class NoBiasCorrection(Adam):
    """ADAM-UPDATE-1: ``alpha = lr``."""

    @staticmethod
    def bias_corrected_lr(lr, beta_1, beta_2, t):
        return lr


class RunningProductBetas(Adam):
    """ADAM-HYPER-2: beta powers kept as the running product of the betas of past steps (TF 1 style)."""

    hidden_state = "the running products of the betas"

    def bias_corrected_lr(self, lr, beta_1, beta_2, t):
        products = self.__dict__.setdefault("_products", {})
        if t not in products:  # once per call: every variable of the call shares it
            p1, p2 = products.get(t - 1, (1.0, 1.0))
            products[t] = (p1 * beta_1, p2 * beta_2)
        p1, p2 = products[t]
        return lr * math.sqrt(1.0 - p2) / (1.0 - p1)


class LaggingBetaProduct(Adam):
    """ADAM-HYPER-2: beta powers kept as a running product that lags one step and counts the first betas twice."""

    hidden_state = "the running products of the betas"

    def bias_corrected_lr(self, lr, beta_1, beta_2, t):
        # Step 1 uses the first betas; step t uses the product before it times the betas of step t - 1, so the
        # first betas count twice and the current ones not at all: visible only when the betas change per step.
        powers, betas = self.__dict__.setdefault("_lagging", {}), self.__dict__.setdefault("_betas", {})
        if t not in powers:
            last = powers.get(t - 1)
            powers[t] = (beta_1, beta_2) if last is None else tuple(p * b for p, b in zip(last, betas[t - 1]))
            betas[t] = (beta_1, beta_2)
        p1, p2 = powers[t]
        return lr * math.sqrt(1.0 - p2) / (1.0 - p1)


class Float32BetaProducts(Adam):
    """ADAM-UPDATE-1: beta_1**t and beta_2**t are float32 running products (TF 1's beta1_power and beta2_power): the
    first call's betas, multiplied after every call by that call's betas, each product rounded to float32, and cast
    to the variable's dtype only where the step uses them, whatever that dtype is."""

    hidden_state = "the running products of the betas"
    wraps = ("update_all", "hyperparameters_for")

    def update_all(self, present, values, t):
        powers = self.__dict__.setdefault("_f32_powers", {})
        if t not in powers:  # once per call: every variable of the call shares it
            betas = (np.float32(values["beta_1"]), np.float32(values["beta_2"]))
            last = powers.get(t - 1)
            powers[t] = betas if last is None else tuple(p * b for p, b in zip(last, self._f32_betas))
            self._f32_betas = betas  # multiplied in after this call, as TF 1's _finish does
        self._f32_now = powers[t]
        super().update_all(present, values, t)

    def hyperparameters_for(self, values, dtype):
        self._f32_dtype = dtype  # the dtype the step casts the products to (None: the exact oracle's float64)
        return super().hyperparameters_for(values, dtype)

    def bias_corrected_lr(self, lr, beta_1, beta_2, t):
        cast = (lambda p: float(p)) if self._f32_dtype is None else (lambda p: float(np.float32(p).astype(self._f32_dtype)))
        p1, p2 = map(cast, self._f32_now)
        return lr * math.sqrt(1.0 - p2) / (1.0 - p1)


class SwappedBetas(Adam):
    """ADAM-UPDATE-2/3: m decays with beta_2 and v with beta_1."""

    wraps = ("_update",)

    def _update(self, var, grad, slots, hp, t):
        super()._update(var, grad, slots, adam.Hyperparameters(hp.learning_rate, hp.beta_2, hp.beta_1, hp.epsilon), t)


class PerVariableStep(Adam):
    """ADAM-MULTI-2: each variable counts its own steps (as torch's state['step'] does), not the optimizer's."""

    hidden_state = "a step count per variable"

    def step_of(self, var, t):
        counts = self.__dict__.setdefault("_steps", {})
        counts[id(var)] = counts.get(id(var), 0) + 1
        return counts[id(var)]


class SlotsByPosition(Adam):
    """ADAM-MULTI-3: slots bound to a variable's position in the call: the i-th variable of a call gets the slots of
    the i-th variable first seen (a state kept as a list aligned with the call's variables)."""

    def update_all(self, present, values, t):
        by_position = list(self._slots.values())  # first-seen order, as the functional optimizer's state list
        for (grad, var), slots in zip(present, by_position):
            self._update(var, grad, slots, self.hyperparameters_for(values, var.dtype), t)


class SlotsOfFirstTrace(Adam):
    """ADAM-MULTI-3: a call takes the slots of the variables at the same positions in the first call with the same
    shapes and dtypes, as apply_gradients inside one tf.function does (its trace, slot lookups included, is reused
    for other variables of the same types)."""

    hidden_state = "the variables of each traced call"

    def update_all(self, present, values, t):
        traces = self.__dict__.setdefault("_traces", {})
        first = traces.setdefault(tuple((var.shape, var.dtype.str) for _, var in present), [var for _, var in present])
        for (grad, var), traced in zip(present, first):
            self._update(var, grad, self._slots[id(traced)], self.hyperparameters_for(values, var.dtype), t)


class IterationsFrozen(Adam):
    """ADAM-ITER-1: iterations never advances, so every step uses t = 1."""

    wraps = ("apply_gradients",)

    def apply_gradients(self, grads_and_vars, name=None):
        super().apply_gradients(grads_and_vars, name)
        self._iterations = 0
        return 0


class SkipsNonFiniteSteps(Adam):
    """ADAM-UPDATE-5: a call with any NaN or Inf gradient is skipped (as loss-scaling wrappers do)."""

    wraps = ("apply_gradients",)

    def apply_gradients(self, grads_and_vars, name=None):
        pairs = list(grads_and_vars)
        values = [np.asarray(g.values if hasattr(g, "indices") else g) for g, _ in pairs if g is not None]
        if all(np.all(np.isfinite(v)) for v in values):
            return super().apply_gradients(pairs, name)
        self._iterations += 1  # the step counter still advances; nothing else changes
        return self._iterations


class PerReplicaClipping(Adam):
    """ADAM-TF2-DIST-1: clipping applied to each replica's share before the sum: clip(G/2) + clip(G/2).

    Defined for a world size of 2 and an even split, as Keras 3 clips under MirroredStrategy: each replica clips
    its share G/2 of the step's gradient G in apply_gradients, then the shares are summed.  Without the strategy
    the port is the one that clips in apply_gradients (ADAM-CLIP-APPLY-1), wrongly, on halves.
    """

    clips_in_apply_gradients = True
    wraps = ("clip_in_apply",)

    def clip_in_apply(self, present):
        halves = super().clip_in_apply([(adam.dense_gradient(g, v.shape) / 2.0, v) for g, v in present])
        return [(g + g, v) for g, v in halves]  # the two replicas' equal clipped shares, summed (exact)


class LossScaledStep(Adam):
    """ADAM-UPDATE-7: the training loop scales the loss, so a call with any NaN or Inf gradient changes nothing
    (iterations, slots and variables), as a loss-scale optimizer skips it."""

    wraps = ("apply_gradients",)

    def apply_gradients(self, grads_and_vars, name=None):
        pairs = list(grads_and_vars)
        values = [np.asarray(g.values if hasattr(g, "indices") else g) for g, _ in pairs if g is not None]
        if all(np.all(np.isfinite(v)) for v in values):
            return super().apply_gradients(pairs, name)
        return self._iterations  # skipped: not even the step counter moves


# --- wrong: AMSGrad ------------------------------------------------------------------------


class AmsgradIgnored(Adam):
    """ADAM-AMSGRAD-2: the update divides by sqrt(v), not sqrt(vhat) (vhat is still kept)."""

    wraps = ("_update",)

    def _update(self, var, grad, slots, hp, t):
        if not self.amsgrad:
            return super()._update(var, grad, slots, hp, t)
        self.amsgrad = False
        try:
            super()._update(var, grad, slots, hp, t)
        finally:
            self.amsgrad = True
        slots["vhat"][...] = np.maximum(slots["vhat"], slots["v"])


class AmsgradNotStored(Adam):
    """ADAM-AMSGRAD-1: the maximum is taken against a vhat that is never stored (so it is always v)."""

    @staticmethod
    def update_vhat(vhat, v):
        return np.maximum(np.zeros_like(v), v)


class AmsgradOverCorrectedV(Adam):
    """ADAM-AMSGRAD-1: the maximum of the bias-corrected v / (1 - beta_2**t), as optax.amsgrad keeps it."""

    def amsgrad_max(self, vhat, v, hp, t):
        c2 = 1.0 - adam.beta_power(hp.beta_2, t)
        vhat = np.maximum(vhat, v / c2)
        return vhat, vhat * c2


# --- wrong: sparse ----------------------------------------------------------------------------


class LazySparse(Adam):
    """ADAM-SPARSE-2: with an IndexedSlices, only the indexed rows of m, v, vhat and the variable change."""

    wraps = ("_update",)

    def _update(self, var, grad, slots, hp, t):
        rows = _rows(grad, var.shape)
        if rows is None:
            return super()._update(var, grad, slots, hp, t)
        keep = {k: s[~rows].copy() for k, s in slots.items()}
        old = var[~rows].copy()
        super()._update(var, grad, slots, hp, t)
        var[~rows] = old
        for k, s in slots.items():
            s[~rows] = keep[k]


class LastDuplicateWins(Adam):
    """ADAM-SPARSE-1: duplicate indices overwrite each other (the last value wins) instead of summing."""

    @staticmethod
    def dense_gradient(grad, shape):
        if not hasattr(grad, "indices"):
            return np.asarray(grad, dtype=np.float64)
        dense = np.zeros(tuple(shape))
        dense[np.asarray(grad.indices).astype(np.int64)] = np.asarray(grad.values, dtype=np.float64)
        return dense


class SquaredDuplicates(Adam):
    """ADAM-SPARSE-1: v receives the sum of the squared duplicates, as Keras 3 does (m still gets their sum)."""

    def moments(self, grad, g, m, v, hp):
        if not hasattr(grad, "indices"):
            return super().moments(grad, g, m, v, hp)
        squares = np.zeros(g.shape)
        np.add.at(squares, np.asarray(grad.indices).astype(np.int64), np.asarray(grad.values, dtype=np.float64) ** 2)
        return self.update_m(m, g, hp.beta_1), hp.beta_2 * v + (1.0 - hp.beta_2) * squares


# --- wrong: hyperparameters -----------------------------------------------------------------


class FrozenCallables(Adam):
    """ADAM-HYPER-1: callables are called once, at construction, and their first value kept."""

    wraps = ("__init__",)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for key, value in self._hyper.items():
            if callable(value) and not isinstance(value, adam.LearningRateSchedule):
                self._hyper[key] = float(value())
        if callable(self.epsilon):
            self.epsilon = float(self.epsilon())


class ScheduleOneBased(Adam):
    """ADAM-HYPER-3: the schedule is called with iterations + 1."""

    wraps = ("_values_in_force",)

    def _values_in_force(self):
        values = super()._values_in_force()
        lr = self._hyper["learning_rate"]
        if isinstance(lr, adam.LearningRateSchedule):
            values["learning_rate"] = lr(self._iterations + 1)
        return values


class DecayIgnored(Adam):
    """ADAM-HYPER-4: the decay keyword is accepted and ignored."""

    wraps = ("__init__",)

    def __init__(self, *args, **kwargs):
        kwargs.pop("decay", None)
        super().__init__(*args, **kwargs)


class DecayOneBased(Adam):
    """ADAM-HYPER-4: ``lr / (1 + decay * (iterations + 1))``."""

    def hyperparameters_for(self, values, dtype):
        return adam.call_hyperparameters(**values, iterations=self._iterations + 1,
                                         float32_storage=self.float32_storage, dtype=dtype)


class DefaultEpsilon1e8(Adam):
    """ADAM-DEFAULTS-1: the default epsilon is 1e-8 (torch's and optax's)."""

    wraps = ("__init__",)

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-8, amsgrad=False, name="Adam", **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, name, **kwargs)


class Float32State(Adam):
    """ADAM-DTYPE-1: m and v stored in float32 whatever the variable's dtype."""

    def add_slot(self, var, slot_name):
        slots = self._slots.setdefault(id(var), {})
        if slot_name not in slots:
            slots[slot_name] = np.zeros(var.shape, dtype=np.float32)
            self._weights.append(slots[slot_name])
        return slots[slot_name]


class EpsilonZeroKept(Adam):
    """ADAM-TF2-EPS-1: epsilon = 0 (or None) is used as 0 instead of becoming 1e-7."""

    wraps = ("__init__",)

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, name="Adam", **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, name, **kwargs)
        self.epsilon = epsilon if epsilon is not None else 0.0


class Float32Arithmetic(Adam):
    """ADAM-DTYPE-1: every step computed in float32, so a float64 variable is updated at float32 precision."""

    @staticmethod
    def working_dtype(dtype):
        return np.dtype(np.float32)


class HyperparametersNotCast(Adam):
    """ADAM-DTYPE-1: hyperparameters are not cast to the variable's dtype (a float16 variable sees float32 betas)."""

    def hyperparameters_for(self, values, dtype):
        return adam.call_hyperparameters(**values, iterations=self._iterations,
                                         float32_storage=self.float32_storage, dtype=None)


class Float64Hyperparameters(Adam):
    """ADAM-TF2-HYPER-1: Python-float hyperparameters used at full precision (no float32 storage)."""

    float32_storage = False


# --- wrong: the API -------------------------------------------------------------------------


class WeightsByVariable(Adam):
    """ADAM-API-WEIGHTS-1: weights grouped by variable ([iterations, m0, v0, m1, v1, ...]), as Keras 3 lists them."""

    @property
    def weights(self):
        if not self._slots:
            return []
        return [np.int64(self._iterations)] + [s[n] for s in self._slots.values() for n in self.get_slot_names()]


class KerasSlotNames(Adam):
    """ADAM-API-SLOTS-1: slots named momentum / velocity / velocity_hat."""

    def get_slot_names(self):
        return ["momentum", "velocity", "velocity_hat"] if self.amsgrad else ["momentum", "velocity"]


class ConfigWithoutDecay(Adam):
    """ADAM-API-CONFIG-1: get_config has no 'decay' key."""

    def get_config(self):
        config = super().get_config()
        config.pop("decay")
        return config


class SetWeightsKeepsIterations(Adam):
    """ADAM-API-WEIGHTS-2: set_weights restores the slots but not iterations."""

    def set_weights(self, weights):
        iterations = self._iterations
        super().set_weights(weights)
        self._iterations = iterations


class MutatesGradient(Adam):
    """ADAM-API-INPUTS-1: the caller's dense gradient arrays are halved in place after the update."""

    wraps = ("apply_gradients",)

    def apply_gradients(self, grads_and_vars, name=None):
        pairs = list(grads_and_vars)
        result = super().apply_gradients(pairs, name)
        for g, _ in pairs:
            if isinstance(g, np.ndarray) and g.flags.writeable:
                g *= 0.5
        return result


# --- correct: other roundings ------------------------------------------------------------------


class KernelMomentForm(Adam):
    """Correct: TF's dense-kernel order ``m + (g - m) * (1 - beta_1)``, ``v + (g*g - v) * (1 - beta_2)``."""

    @staticmethod
    def update_m(m, g, beta_1):
        return m + (g - m) * (1.0 - beta_1)

    @staticmethod
    def update_v(v, g, beta_2):
        return v + (g * g - v) * (1.0 - beta_2)


class NativePaperForm(Adam):
    """Correct: the paper's moment form ``beta * m + (1 - beta) * g`` computed in the variable's own dtype."""

    @staticmethod
    def working_dtype(dtype):
        return dtype

    def step_size(self, hp, t, work):
        dt, one = work.type, work.type(1)
        return dt(hp.learning_rate) * np.sqrt(one - dt(hp.beta_2) ** dt(t)) / (one - dt(hp.beta_1) ** dt(t))


class NativePrecision(NativePaperForm):
    """Correct: every step computed in the variable's own dtype, in TF's dense-kernel moment order."""

    update_m = staticmethod(KernelMomentForm.update_m)
    update_v = staticmethod(KernelMomentForm.update_v)


def _fused_multiply_add(a: np.ndarray, b: Any, c: np.ndarray) -> np.ndarray:
    """``a*b + c`` rounded to c's dtype once, as an FMA instruction does.

    Exact products through float64 for dtypes of at most 24 significant bits (float16, bfloat16, float32); the sum
    is then rounded to float64 and to the dtype, which differs from one rounding only at rare double-rounding ties.
    NumPy has no FMA, so float64 gets two roundings (the plain kernel order).
    """
    wide = np.asarray(a, dtype=np.float64) * np.float64(b) + np.asarray(c, dtype=np.float64)
    return wide.astype(np.asarray(c).dtype)


class ContractedKernelForm(NativePrecision):
    """Correct: TF's kernel order with each moment update one fused multiply-add (XLA on CPU nests two for v)."""

    @staticmethod
    def update_m(m, g, beta_1):
        return _fused_multiply_add(g - m, 1.0 - beta_1, m)

    @staticmethod
    def update_v(v, g, beta_2):
        return _fused_multiply_add(g * g - v, 1.0 - beta_2, v)


class GroupedStepSize(Adam):
    """Correct: the algebraically equal ``var - lr * (sqrt(1 - b2**t) / (1 - b1**t)) * (m / (sqrt(v) + eps))``, libm pow."""

    @staticmethod
    def bias_corrected_lr(lr, beta_1, beta_2, t):
        return lr * (math.sqrt(1.0 - beta_2**t) / (1.0 - beta_1**t))

    @staticmethod
    def update_variable(var, alpha, m, v, epsilon):
        return var - alpha * (m / (np.sqrt(v) + epsilon))


class ScatterSparse(Adam):
    """Correct: TF's sparse path: decay all of m and v, then scatter-add the summed rows."""

    def moments(self, grad, g, m, v, hp):
        if not hasattr(grad, "indices"):
            return super().moments(grad, g, m, v, hp)
        idx, inverse = np.unique(np.asarray(grad.indices).astype(np.int64), return_inverse=True)
        summed = np.zeros((len(idx),) + g.shape[1:])
        np.add.at(summed, inverse, np.asarray(grad.values, dtype=np.float64))
        m, v = m * hp.beta_1, v * hp.beta_2
        np.add.at(m, idx, summed * (1.0 - hp.beta_1))
        np.add.at(v, idx, (summed * summed) * (1.0 - hp.beta_2))
        return m, v


# --- wrong: kernel shapes (the ``kernels`` family) ----------------------------------------------

#: A vector kernel's width in elements, and the size from which it takes its vector loop.
LANES, VECTOR_LOOP_FROM = 8, 64


class VectorTailSkipped(Adam):
    """ADAM-UPDATE-4: the vector loop leaves the elements past the last multiple of 8 unchanged (tensors of 64 or more)."""

    wraps = ("_update",)

    def _update(self, var, grad, slots, hp, t):
        before = [x.copy() for x in (var, *slots.values())]
        super()._update(var, grad, slots, hp, t)
        if var.size >= VECTOR_LOOP_FROM:
            tail = var.size - var.size % LANES
            for x, old in zip((var, *slots.values()), before):
                x.flat[tail:] = old.flat[tail:]


class MultiTensorFirstLaunchOnly(Adam):
    """ADAM-MULTI-1: a multi-tensor apply in launches of 100 tensors runs only the first: later variables stay unchanged."""

    wraps = ("update_all",)

    def update_all(self, present, values, t):
        super().update_all(present[:100], values, t)


class EmptyTensorEndsTheCall(Adam):
    """ADAM-MULTI-1: an empty variable ends the call's loop: the variables after it are left unchanged."""

    wraps = ("update_all",)

    def update_all(self, present, values, t):
        first_empty = next((i for i, (_, var) in enumerate(present) if var.size == 0), len(present))
        super().update_all(present[:first_empty], values, t)


class FlatCopyUpdate(Adam):
    """ADAM-UPDATE-4: the update is written through ``reshape(-1)``, a copy for a non-contiguous variable, so it is lost."""

    wraps = ("_update",)

    def _update(self, var, grad, slots, hp, t):
        out = var.copy()  # contiguous: the update computed as the reference does
        super()._update(out, grad, slots, hp, t)
        var.reshape(-1)[...] = out.reshape(-1)  # a view only when var is contiguous


class StridedUpdateDiscarded(Adam):
    """ADAM-UPDATE-4: a strided variable is updated through a contiguous copy of it and its slots, then discarded."""

    wraps = ("_update",)

    def _update(self, var, grad, slots, hp, t):
        if var.flags.c_contiguous:
            return super()._update(var, grad, slots, hp, t)
        # The kernel takes contiguous inputs: it is handed copies, and what it writes into them is lost.
        super()._update(np.ascontiguousarray(var), grad, {k: s.copy() for k, s in slots.items()}, hp, t)


class FirstDtypeForTheCall(Adam):
    """ADAM-DTYPE-2: a call of several dtypes is computed in its first variable's dtype, then stored in each one's own."""

    def update_all(self, present, values, t):
        dtype = present[0][1].dtype
        for grad, var in present:
            slots = self._slots[id(var)]
            if var.dtype == dtype:
                self._update(var, grad, slots, self.hyperparameters_for(values, dtype), t)
                continue
            work = var.astype(dtype)
            held = {k: s.astype(dtype) for k, s in slots.items()}
            self._update(work, self.dense_gradient(grad, var.shape).astype(dtype), held,
                         self.hyperparameters_for(values, dtype), t)
            var[...] = work.astype(var.dtype)
            for k, s in held.items():
                slots[k][...] = s.astype(var.dtype)


class StepSizeInFirstDtype(Adam):
    """ADAM-DTYPE-2: a call of several dtypes computes the step size alpha once, in its first variable's dtype."""

    wraps = ("update_all",)

    def update_all(self, present, values, t):
        first = present[0][1].dtype
        self._alpha = float(NativePaperForm.step_size(self, self.hyperparameters_for(values, first), t, first))
        super().update_all(present, values, t)

    def step_size(self, hp, t, work):
        return self._alpha


WRONG = [
    EpsilonInsideSqrt, Algorithm1Epsilon, StepOffByOne, NoFirstMomentCorrection, NoSecondMomentCorrection,
    NoBiasCorrection, RunningProductBetas, LaggingBetaProduct, SwappedBetas, PerVariableStep, SlotsByPosition,
    SlotsOfFirstTrace,
    IterationsFrozen, SkipsNonFiniteSteps, PerReplicaClipping, AmsgradIgnored, AmsgradNotStored,
    AmsgradOverCorrectedV, LazySparse, LastDuplicateWins, SquaredDuplicates, FrozenCallables, ScheduleOneBased,
    DecayIgnored, DecayOneBased, DefaultEpsilon1e8, Float32State, Float32Arithmetic, HyperparametersNotCast, EpsilonZeroKept, Float64Hyperparameters,
    WeightsByVariable, KerasSlotNames, ConfigWithoutDecay, SetWeightsKeepsIterations, MutatesGradient,
    VectorTailSkipped, MultiTensorFirstLaunchOnly, EmptyTensorEndsTheCall, FlatCopyUpdate, StridedUpdateDiscarded,
    FirstDtypeForTheCall,
    StepSizeInFirstDtype,
]
#: What a training loop declares around the optimizer (a profile an adapter's loop mode gives, ``profile()``): not
#: a wrong port, so neither in the diagnosis nor in the mutation test.
LOOPS = [LossScaledStep]
#: What another optimizer than the page's does, named so that its profile can declare it (not in the mutation test).
OTHERS = [Float32BetaProducts]
CORRECT = [KernelMomentForm, NativePrecision, NativePaperForm, GroupedStepSize, ScatterSparse, ContractedKernelForm]


# --- deviations compose ------------------------------------------------------------------------------


def hooks(cls: type) -> set[str]:
    """What a variant overrides of ``reference.Adam``: its own methods and attributes (``__init__`` included)."""
    own = {k for k in vars(cls) if not k.startswith("__") or k == "__init__"}
    return own - {"__doc__", "__module__", "wraps", "hidden_state", "clips_in_apply_gradients"}


def composable(*deviations: type) -> bool:
    """Whether the deviations can be one port: no hook is overridden by two of them, unless each of the two wraps it
    (calls the hook it overrides, ``wraps``), so that one change is made on top of the other."""
    for i, a in enumerate(deviations):
        for b in deviations[i + 1:]:
            shared = hooks(a) & hooks(b)
            if a is b or not shared <= set(getattr(a, "wraps", ())) & set(getattr(b, "wraps", ())):
                return False
    return True


def compose(*deviations: type) -> type:
    """One port that departs from ``reference.Adam`` in every way the deviations do (``composable`` ones), each
    change made to the clause it changes; named ``A + B``.  A single deviation is returned as it is, none as the
    spec's port itself."""
    if len(deviations) <= 1:
        return deviations[0] if deviations else Adam
    if not composable(*deviations):
        raise ValueError(f"{' + '.join(d.__name__ for d in deviations)}: these deviations change the same hook")
    ordered = sorted(deviations, key=lambda d: WRONG.index(d) if d in WRONG else len(WRONG))
    return type(" + ".join(d.__name__ for d in ordered), tuple(ordered), {"__doc__": ordered[0].__doc__})


def judging(port: type) -> type:
    """``port`` as the kit replays it to judge or diagnose a candidate: clipping in apply_gradients when a vector asks
    for it (ADAM-CLIP-APPLY-1).  ``reference.Adam`` as a candidate is TF 2.0's port and does not clip there
    (ADAM-TF2-CLIP-1); the judge's replays are those of the spec for the vector, which says where to clip."""
    if port.clips_in_apply_gradients:
        return port
    return type(port.__name__, (port,), {"__doc__": port.__doc__, "clips_in_apply_gradients": True,
                                         "__module__": port.__module__})


def deviation(name: str) -> type:
    """The wrong variant called ``name``; ValueError naming the known ones otherwise."""
    found = {cls.__name__: cls for cls in WRONG + LOOPS + OTHERS}
    if name not in found:
        raise ValueError(f"unknown deviation {name!r}; known: {', '.join(sorted(found))}")
    return found[name]
