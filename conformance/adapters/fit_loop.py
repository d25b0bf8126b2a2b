"""What the ``fit`` and ``fit-mixed`` execution modes share (tf_keras and Keras 3 on every backend): no framework here.

In those modes every step of a vector goes through Keras's own training loop, ``model.fit``, so that what the loop
does around the optimizer (its ``tf.function`` or ``jax.jit``, its loss handling, a loss-scale optimizer) is judged
against the oracle.  The model's weights are the vector's variables and its loss is ``sum_n sum(w_n * G_n)``, where
the one sample of the one batch of a ``fit`` call holds the step's gradients ``G_n`` (in each variable's dtype):
the gradient of ``w_n`` is then ``1 * G_n``, bit for bit.  Nothing rounds on the way: the loss is added with
``add_loss`` (no reduction over a batch of one), inputs and weights are never autocast, the data is passed as
tensors to tf_keras (it would cast NumPy arrays to float32) and as the gradients' bits in integers to Keras 3
(its fit hands the model floating inputs as float32, on every backend: ``tests/test_fit.py``), and each step is one ``fit`` call of one epoch of one batch, so
no shuffling and no partial batch, and the optimizer's state (``iterations`` too) carries over from call to call.
``tests/test_fit.py`` checks that the gradients the optimizer receives are the vector's, bit for bit.

``fit-mixed`` compiles the model under the ``mixed_float16`` policy, so ``compile`` wraps the optimizer in its
``LossScaleOptimizer``: the loss is multiplied by the loss scale (a power of two) and the gradients divided by it,
and a step whose gradients are not all finite is skipped.  The model's own arithmetic stays in float32 (its
weights are created float32 and not autocast), so the gradient stays exact; only float32 vectors run.  The
loop declares the loss scaling as the profile ``LossScaledStep`` (ADAM-UPDATE-7).
"""

from __future__ import annotations

from conformance.features import Feature

FIT_EXECUTIONS = {
    "fit": "every step through model.fit (its own train_step and compiled function), one batch per step",
    "fit-mixed": "model.fit under the mixed_float16 policy: compile wraps the optimizer in a LossScaleOptimizer",
}

#: Why the loop cannot give what these vectors ask.
_DENSE = ("model.fit differentiates the loss sum(w * G) with respect to every weight, so each variable gets a "
          "dense gradient at every step")
_FLOAT32 = "fit-mixed: the mixed_float16 policy keeps float32 variables; only float32 vectors run"


def fit_lacking(execution: str) -> dict[Feature, str]:
    """What ``fit`` (and ``fit-mixed``) cannot express, with the reason."""
    out = {Feature.SPARSE: f"{_DENSE}, never an IndexedSlices",
           Feature.NONE_GRADIENT: f"{_DENSE}, never None",
           Feature.LATE_VARIABLE: f"{_DENSE}, from the first step on (no variable joins later)"}
    if execution == "fit-mixed":
        out.update({Feature.FLOAT16: _FLOAT32, Feature.BFLOAT16: _FLOAT32, Feature.FLOAT64: _FLOAT32,
                    Feature.MIXED_DTYPES: _FLOAT32})
    return out


def fit_translations(execution: str, backend: str | None = None) -> list[str]:
    """What the loop modes translate, in words, for the report header (``backend``: Keras 3's)."""
    out = ["each step is one model.fit call of one batch of one sample holding the step's gradients G; the model's "
           "loss sum(w * G) (add_loss) gives exactly G as the gradient of its weights, the vector's variables"]
    if backend == "torch":
        out.append('on CPU the model is built under keras.device("cpu"), not "cpu:0": under "cpu:0" Keras 3 makes '
                   "each torch variable a copy of its parameter, which fit finds no gradient for")
    if execution == "fit-mixed":
        out.append("the model's arithmetic and weights stay float32 under the mixed_float16 policy (no autocast), "
                   "so the LossScaleOptimizer's scaling is the only change to the gradient")
    return out


def fit_profile(execution: str) -> tuple[str, ...]:
    """The loop's declared rule: under loss scaling a non-finite step is skipped (ADAM-UPDATE-7)."""
    return ("LossScaledStep",) if execution == "fit-mixed" else ()
