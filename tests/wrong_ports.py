"""Wrong ports that are not among ``reference/variants.py``: the measure of the diagnosis beyond its list.

Three kinds, each a NumPy port whose docstring's first line is "CLAUSE: description":

- ``OUTSIDE``: one defect no variant has; the right diagnosis is "no known variant explains it", with the
  localisation naming ``locus``, the first tensor the defect touches in the order of the update.
- ``FITTED``: the correct update with one hyperparameter changed; the right diagnosis is ``fit``, a label of
  ``conformance.diagnosis.diagnose.FITS`` (or a listed variant that does the same on some vectors, in ``also``).
- ``PAIRS``: two listed variants at once; the right diagnosis names the ones that depart on the item, as a pair
  when both do.  ``LOCUS`` says which tensor each of those variants touches first.

``python -m tests.diagnosis_accuracy`` runs them all over the default vectors (docs/diagnosis.md).
"""

from __future__ import annotations

import math

import numpy as np

from reference import variants
from reference.port import Adam

# --- single defects outside the list -------------------------------------------------------------------------------


class AbsGradSecondMoment(Adam):
    """ADAM-UPDATE-3: v accumulates |g| instead of g * g."""

    locus = "v"

    @staticmethod
    def update_v(v, g, beta_2):
        return beta_2 * v + (1.0 - beta_2) * np.abs(g)


class UndampedMomentum(Adam):
    """ADAM-UPDATE-2: m = beta_1 * m + g, without the (1 - beta_1) factor (SGD-momentum style)."""

    locus = "m"

    @staticmethod
    def update_m(m, g, beta_1):
        return beta_1 * m + g


class NoSquareRoot(Adam):
    """ADAM-UPDATE-4: var - alpha * m / (v + epsilon), the square root forgotten."""

    locus = "variable"

    @staticmethod
    def update_variable(var, alpha, m, v, epsilon):
        with np.errstate(invalid="ignore", divide="ignore"):
            return var - alpha * m / (v + epsilon)


class VhatOfPreviousV(Adam):
    """ADAM-AMSGRAD-1: the maximum is taken with the v of the previous step, not the one just computed."""

    locus = "vhat"

    def moments(self, grad, g, m, v, hp):
        self._previous_v = v  # the v brought into the step
        return super().moments(grad, g, m, v, hp)

    def amsgrad_max(self, vhat, v, hp, t):
        vhat = np.maximum(vhat, self._previous_v)
        return vhat, vhat


class Float32BetaPowers(Adam):
    """ADAM-HYPER-2: TF 1's AdamOptimizer: beta powers kept as float32 running products, whatever the dtype."""

    locus = "variable"

    def bias_corrected_lr(self, lr, beta_1, beta_2, t):
        products = self.__dict__.setdefault("_products", {})
        if t not in products:
            p1, p2 = products.get(t - 1, (np.float32(1.0), np.float32(1.0)))
            products[t] = (p1 * np.float32(beta_1), p2 * np.float32(beta_2))
        p1, p2 = map(float, products[t])
        return lr * math.sqrt(1.0 - p2) / (1.0 - p1)


class DecoupledWeightDecay(Adam):
    """ADAM-UPDATE-4: AdamW's decoupled weight decay at torch's default 0.01 (var -= lr * 0.01 * var)."""

    locus = "variable"

    def _update(self, var, grad, slots, hp, t):
        decayed = var * (1.0 - hp.learning_rate * 0.01)
        var[...] = decayed.astype(var.dtype)
        super()._update(var, grad, slots, hp, t)


OUTSIDE = [AbsGradSecondMoment, UndampedMomentum, NoSquareRoot, VhatOfPreviousV, Float32BetaPowers, DecoupledWeightDecay]


# --- one hyperparameter changed --------------------------------------------------------------------------------------


class HardcodedEpsilon(Adam):
    """ADAM-UPDATE-4: epsilon is always 1e-8, whatever is passed."""

    locus, fit, also = "variable", "epsilon = 1e-08", ("DefaultEpsilon1e8",)

    def _values_in_force(self):
        return {**super()._values_in_force(), "epsilon": 1e-8}


class LearningRateUnits(Adam):
    """ADAM-UPDATE-1: the learning rate is read ten times too large (a units slip)."""

    locus, fit, also = "variable", "learning_rate x 10", ()

    def _values_in_force(self):
        values = super()._values_in_force()
        return {**values, "learning_rate": 10.0 * values["learning_rate"]}


class Float32Epsilon(Adam):
    """ADAM-TF2-HYPER-1: epsilon is stored as float32 with the other hyperparameters."""

    locus, fit, also = "variable", "epsilon stored as float32", ()

    def _values_in_force(self):
        values = super()._values_in_force()
        return {**values, "epsilon": float(np.float32(values["epsilon"]))}


FITTED = [HardcodedEpsilon, LearningRateUnits, Float32Epsilon]


# --- two listed defects at once ---------------------------------------------------------------------------------------

#: The first tensor, in the order of the update, that each variant used in a pair makes wrong ("m|v": either,
#: as the values decide which rounding leaves its bound first).
LOCUS = {
    "Float32State": "m|v", "Algorithm1Epsilon": "variable", "RunningProductBetas": "variable", "SwappedBetas": "m|v",
    "StepOffByOne": "variable", "EpsilonInsideSqrt": "variable", "NoBiasCorrection": "variable", "LazySparse": "m",
    "SquaredDuplicates": "v", "AmsgradNotStored": "vhat", "NoSecondMomentCorrection": "variable",
    "PerVariableStep": "variable", "Float64Hyperparameters": "m|v", "DecayOneBased": "variable",
    "ScheduleOneBased": "variable",
}


def _pair(a: type, b: type) -> type:
    """A port with both defects: the two variants override different hooks of ``reference.Adam``."""
    clause = "; ".join(dict.fromkeys(c.__doc__.split(":")[0] for c in (a, b)))
    doc = f"{clause}: {a.__name__} and {b.__name__} at once."
    return type(f"{a.__name__}And{b.__name__}", (a, b), {"__doc__": doc, "members": (a.__name__, b.__name__),
                                                         "__module__": __name__})


V = variants
PAIRS = [
    _pair(V.Float32State, V.Algorithm1Epsilon),  # a third-party port seen in the wild
    _pair(V.RunningProductBetas, V.Float32State),
    _pair(V.SwappedBetas, V.StepOffByOne),
    _pair(V.EpsilonInsideSqrt, V.NoBiasCorrection),
    _pair(V.LazySparse, V.SquaredDuplicates),
    _pair(V.AmsgradNotStored, V.NoSecondMomentCorrection),
    _pair(V.PerVariableStep, V.Float64Hyperparameters),
    _pair(V.DecayOneBased, V.ScheduleOneBased),
]
globals().update({cls.__name__: cls for cls in PAIRS})  # importable by name: --candidate=tests.wrong_ports:NAME

ALL = OUTSIDE + FITTED + PAIRS
assert not {c.__name__ for c in ALL} & {c.__name__ for c in variants.WRONG + variants.CORRECT}
