"""The training-loop modes (``--execution=fit`` and ``fit-mixed``), the loss-scaled step (ADAM-UPDATE-7) and TF 1's
AdamOptimizer: what the kit assumes of them, and what it found, measured in processes of their own (one framework
each) so that a framework that changes makes these fail."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conformance.adapters import choose
from conformance.adapters.fit_loop import fit_lacking, fit_profile
from conformance.features import Feature
from reference import variants
from tests.helpers import ROOT, need

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}


def _json(cmd: list[str], env: dict | None = None) -> dict:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT, env={**ENV, **(env or {})})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- no framework ---------------------------------------------------------------------------------------


def test_tf1_candidates_get_the_tf1_adapter():
    assert choose("tensorflow.compat.v1.train:AdamOptimizer") == "tf1"
    assert choose("tensorflow.keras.optimizers:Adam") == "keras3"


def test_fit_modes_declare_what_they_cannot_express():
    assert {Feature.SPARSE, Feature.NONE_GRADIENT, Feature.LATE_VARIABLE} <= set(fit_lacking("fit"))
    assert Feature.FLOAT16 not in fit_lacking("fit") and Feature.FLOAT16 in fit_lacking("fit-mixed")
    assert fit_profile("fit") == () and fit_profile("fit-mixed") == ("LossScaledStep",)


def test_a_loss_scaled_step_with_a_non_finite_gradient_changes_nothing():
    """ADAM-UPDATE-7: iterations, slots and variables as they were; the next finite step is t = 2."""
    opt = variants.deviation("LossScaledStep")(learning_rate=0.125)
    a, b = np.array([1.0, 2.0]), np.array([3.0])
    opt.apply_gradients([(np.array([0.5, 0.25]), a), (np.array([1.0]), b)])
    before = (opt.iterations, a.copy(), b.copy(), opt.get_slot(a, "m").copy(), opt.get_slot(b, "v").copy())
    opt.apply_gradients([(np.array([0.5, np.nan]), a), (np.array([1.0]), b)])
    assert opt.iterations == before[0] == 1
    for have, want in zip((a, b, opt.get_slot(a, "m"), opt.get_slot(b, "v")), before[1:]):
        assert np.array_equal(have, want)
    plain = variants.Adam(learning_rate=0.125)
    c = np.array([1.0, 2.0])
    plain.apply_gradients([(np.array([0.5, 0.25]), c)])
    plain.apply_gradients([(np.array([0.25, 0.5]), c)])
    opt.apply_gradients([(np.array([0.25, 0.5]), a), (np.array([1.0]), b)])
    assert np.array_equal(a, c)  # as if the skipped call had never been made
    assert "LossScaledStep" not in {cls.__name__ for cls in variants.WRONG}  # a loop's rule, not a mutant


def test_float32_beta_products_lag_behind_callable_betas():
    """TF 1's beta1_power: the first call's beta, then times each call's beta after the call, in float32."""
    betas = iter([0.5, 0.75, 0.875])
    current = {"b": 0.5}

    def beta():
        return current["b"]

    opt = variants.deviation("Float32BetaProducts")(learning_rate=0.125, beta_1=beta)
    x = np.array([1.0])
    for b in betas:
        current["b"] = b
        opt.apply_gradients([(np.array([1.0]), x)])
    assert opt._f32_now[0] == np.float32(0.5 * 0.5 * 0.75)  # step 3 used b0 * b0 * b1


# --- the frameworks -------------------------------------------------------------------------------------

CASES = [("tf_keras", None, "fit"), ("tf_keras", None, "fit-mixed")] + [
    ("keras3", backend, execution) for backend in ("tensorflow", "jax", "torch") for execution in ("fit", "fit-mixed")]


@pytest.mark.slow
@pytest.mark.parametrize("adapter,backend,execution", CASES)
def test_fit_hands_the_optimizer_the_vectors_gradients_bit_for_bit(adapter, backend, execution):
    """The model's loss sum(w * G) through model.fit (and the LossScaleOptimizer's scale and unscale) gives the
    optimizer exactly the vector's gradient, every step, in every dtype (fit_loop's claim)."""
    need({"tf_keras": "tf_keras", "tensorflow": "tensorflow"}.get(backend or adapter, backend))
    found = _json([sys.executable, "-m", "tests.fit_gradients", adapter, execution],
                  {"KERAS_BACKEND": backend} if backend else None)
    assert found["compared"] >= (31 if execution == "fit-mixed" else 89) and found["differences"] == []


LOSS_SCALE = """
import json, sys
import numpy as np
from conformance.inputs import RunSpec
if sys.argv[1] == "tf_keras":
    import tf_keras
    from conformance.adapters.tf_keras import TfKerasLegacyAdapter as Adapter
    candidate = tf_keras.optimizers.legacy.Adam
else:
    import keras
    from conformance.adapters.keras3 import Keras3Adapter as Adapter
    candidate = keras.optimizers.Adam
session = Adapter(candidate, execution="fit-mixed").start(RunSpec.for_values("float32", {"a": np.array([1.0, 2.0])}, {}))
out = []
for g in ([0.5, 0.25], [np.nan, 1.0]):
    session.apply({"a": np.array(g)}, len(out))
    state = session.read()
    out.append([state["iterations"], state["a"]["variable"].tolist(), state["a"]["m"].tolist()])
print(json.dumps(out))
"""


@pytest.mark.slow
@pytest.mark.parametrize("adapter,backend", [("tf_keras", None), ("keras3", "tensorflow"), ("keras3", "jax"),
                                             ("keras3", "torch")])
def test_what_a_loss_scale_optimizer_does_with_a_non_finite_step(adapter, backend):
    """ADAM-UPDATE-7 and its Differs, through model.fit under mixed_float16 (the fit-mixed session): slots and
    variable unchanged everywhere; iterations unchanged in Keras 3 and advanced by tf_keras's legacy
    LossScaleOptimizer (tf_keras_legacy.yaml, its fit-mixed entry)."""
    need({"tf_keras": "tf_keras", "tensorflow": "tensorflow"}.get(backend or adapter, backend))
    (t1, var1, m1), (t2, var2, m2) = _json([sys.executable, "-c", LOSS_SCALE, adapter],
                                           {"KERAS_BACKEND": backend} if backend else None)
    assert (var2, m2) == (var1, m1) and t1 == 1
    assert t2 == (2 if adapter == "tf_keras" else 1)


@pytest.mark.slow
def test_keras3_torch_model_built_under_cpu0_gets_no_gradient():
    """docs/repro/keras3_torch_cpu0_fit.py: the fit modes build the model under keras.device("cpu") because of it."""
    need("torch")
    proc = subprocess.run([sys.executable, str(ROOT / "docs" / "repro" / "keras3_torch_cpu0_fit.py")],
                          capture_output=True, text=True, timeout=300, env=ENV)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("cpu")]
    assert proc.returncode == 1, proc.stdout + proc.stderr[-2000:]
    assert lines[0].startswith("cpu: weight is a leaf: True; fit trained")
    assert lines[1] == ("cpu:0: weight is a leaf: False; fit raised ValueError: No gradients provided for any "
                        "variable.")


TF1 = """
import json
import tensorflow as tf
A = tf.compat.v1.train.AdamOptimizer
out = {}
for name in ("learning_rate", "beta1", "beta2", "epsilon"):
    calls = []
    def value(name=name):
        calls.append(1)
        return {"learning_rate": 0.125, "beta1": 0.5, "beta2": 0.75, "epsilon": 0.25}[name]
    opt, v = A(**{name: value}), tf.Variable([1.0, 2.0])
    for _ in range(3):
        opt.apply_gradients([(tf.constant([0.5, 0.25]), v)])
    out[name] = len(calls)
opt, v = A(), tf.Variable([1.0, 2.0], dtype=tf.float64)
opt.apply_gradients([(tf.constant([0.5, 0.25], tf.float64), v)])
out["powers"] = [p.dtype.name for p in opt._get_beta_accumulators()]
out["default_epsilon"] = opt._epsilon
out["iterations"] = hasattr(opt, "iterations")
out["slots"] = opt.get_slot_names()
try:
    A(learning_rate=tf.keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)).apply_gradients(
        [(tf.constant([1.0]), tf.Variable([1.0]))])
    out["schedule"] = "accepted"
except TypeError:
    out["schedule"] = "TypeError"
print(json.dumps(out))
"""


@pytest.mark.slow
def test_what_tf1_adam_accepts_in_tf2_eager():
    """The tf1 adapter's and tf1_adam.yaml's claims: every hyperparameter may be a callable (called at each
    apply_gradients, epsilon too), a schedule of the step may not; the default epsilon is 1e-8; no iterations;
    the beta powers are float32 even for a float64 variable (Float32BetaProducts)."""
    need("tensorflow")
    found = _json([sys.executable, "-c", TF1])
    assert all(found[k] >= 3 for k in ("learning_rate", "beta1", "beta2", "epsilon")), found
    assert found["powers"] == ["float32", "float32"] and found["iterations"] is False
    assert found["slots"] == ["m", "v"] and found["schedule"] == "TypeError" and found["default_epsilon"] == 1e-8


FLOAT64_SAMPLE = """
import os, sys, json
if os.environ["KERAS_BACKEND"] == "jax":
    import jax
    jax.config.update("jax_enable_x64", True)
import keras, numpy as np
seen = {}
class Linear(keras.Model):
    def __init__(self):
        super().__init__(autocast=False)
        self._convert_input_args = False
        self.w = self.add_weight(shape=(1,), dtype="float64", initializer="zeros", autocast=False)
    def call(self, x):
        seen["dtype"] = keras.backend.standardize_dtype(x.dtype)
        loss = keras.ops.sum(self.w * x[0])
        self.add_loss(loss)
        return loss
model = Linear()
model.compile(optimizer=keras.optimizers.SGD(1.0))
model.fit(keras.ops.convert_to_tensor(np.array([[0.1]]), dtype="float64"), batch_size=1, epochs=1, verbose=0)
print(json.dumps({"sample": seen["dtype"], "step": float(-keras.ops.convert_to_numpy(model.w)[0])}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
def test_keras3_fit_casts_a_float64_sample_to_float32(backend):
    """Why the Keras 3 fit session carries each gradient's bits as integers (keras3._bits): fit hands the model a
    float64 input as float32 (floatx), so a float64 weight would get a float32-rounded gradient."""
    need(backend)
    found = _json([sys.executable, "-c", FLOAT64_SAMPLE], {"KERAS_BACKEND": backend})
    assert found == {"sample": "float32", "step": float(np.float32(0.1))}
