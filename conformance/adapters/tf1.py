"""Adapter for TF 1's ``tf.compat.v1.train.AdamOptimizer``, as the migration guide runs TF 1 code in TF 2: eager
``apply_gradients`` on ``tf.Variable``\\ s.

TF 1's optimizer is another class with another API: the constructor says ``beta1`` and ``beta2`` (the adapter
passes the vector's ``beta_1`` and ``beta_2`` under those names, a translation listed in the report); there is
no ``amsgrad``, no ``decay`` and no ``iterations``: the step count lives in two float32 accumulators,
``beta1_power`` and ``beta2_power`` (``_get_beta_accumulators()``), the running products of the betas.  Every
hyperparameter, epsilon included, may be a zero-argument callable (measured in TF 2.21: each is called at every
``apply_gradients``); a schedule of the step cannot be given (TF 1 calls it with no argument).  Slots are
``get_slot(var, "m")`` and ``"v"``.  State loading (single-step mode) sets ``m`` and ``v`` through ``get_slot`` and
the accumulators to ``beta ** (iterations + 1)`` (the float32 beta's power, rounded once to float32: the power the
next step uses, which is what ``iterations`` means there); with a callable beta the product has no such value, and single-step mode is
unsupported.  Its known differences from the spec are declared in ``conformance/expectations/tf1_adam.yaml``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from conformance.adapters.base import Adapter
from conformance.adapters.numpy_port import constructor_kwargs
from conformance.adapters.tf_keras import TfKerasLegacyAdapter, TfSession
from conformance.adapters.tf_ops import TF_DTYPES, tf_gradient
from conformance.errors import Unsupported
from conformance.features import Feature
from conformance.inputs import StepCallable

#: The vector's names -> TF 1's.
RENAMED = {"beta_1": "beta1", "beta_2": "beta2"}


def _refused_schedule(inner: Any) -> Any:
    raise Unsupported("TF 1's AdamOptimizer calls a callable learning rate with no argument: a schedule of the step "
                      "cannot be given")


class Tf1Adapter(TfKerasLegacyAdapter):
    name = "tf1"
    claims_v2_api = False  # TF 1's API, not the page's optimizer_v2 one
    executions = {"eager": "eager apply_gradients on tf.Variables, as the migration guide runs TF 1 code in TF 2"}

    @property
    def translations(self) -> list[str]:
        return ["beta_1 and beta_2 passed as TF 1's beta1 and beta2",
                "single-step mode sets beta1_power and beta2_power to beta ** (iterations + 1), the power of the next step (TF 1 keeps the products of "
                "the betas, not iterations); m and v through get_slot"]

    def versions(self) -> dict[str, str]:
        return {"tensorflow": tf.__version__}

    def lacking(self) -> dict[Feature, str]:
        out = {Feature.AMSGRAD: "TF 1's AdamOptimizer has no amsgrad",
               Feature.DECAY: "TF 1's AdamOptimizer has no decay keyword",
               Feature.SCHEDULE: "TF 1's AdamOptimizer calls a callable learning rate with no argument: a schedule of "
                                 "the step cannot be given",
               Feature.CONFIG_ROUND_TRIP: "TF 1's AdamOptimizer has no get_config / from_config"}
        if self.device == "gpu":
            out[Feature.BFLOAT16] = "TensorFlow has no GPU bfloat16 Adam kernel"
        return out

    def start(self, spec: Any) -> "Tf1Session":
        return Tf1Session(self.candidate, spec, self.device_string())

    def device_string(self) -> str:
        from conformance.adapters.tf_ops import tf_device

        return tf_device(self.device)

    def v2_api(self) -> Any:
        raise Unsupported("TF 1's AdamOptimizer does not claim the optimizer_v2 API")

    def page_aliases(self) -> dict[str, Any]:
        raise Unsupported("TF 1's AdamOptimizer is not one of the page's names")

    def environment(self) -> dict[str, Any]:
        return Adapter.environment(self)  # flush-to-zero; the page's names are not this class's


class Tf1Session(TfSession):
    """An eager TF 1 optimizer over ``tf.Variable``\\ s; ``read`` has no ``iterations`` (TF 1 has none)."""

    def __init__(self, cls: Any, spec: Any, device: str) -> None:
        self.device, self.amsgrad, self.spec = device, False, spec
        kwargs = {RENAMED.get(k, k): v for k, v in constructor_kwargs(spec, _refused_schedule).items()
                  if k != "amsgrad"}
        with tf.device(device):
            self.opt = cls(**kwargs)
            self.vars = {n: tf.Variable(v, dtype=TF_DTYPES[spec.dtype_of(n)], name=n) for n, v in spec.variables.items()}
        self.step = self.opt.apply_gradients

    def apply(self, grads: dict[str, Any], step: int) -> None:
        with tf.device(self.device):
            self.step([(tf_gradient(g, self.vars[n].dtype), self.vars[n]) for n, g in grads.items()])

    def load(self, state: dict) -> None:
        """m and v through ``get_slot``, the accumulators as ``beta ** (iterations + 1)``, then the variables."""
        hyper = self.spec.hyper
        if any(isinstance(hyper.get(k), StepCallable) for k in RENAMED):
            raise Unsupported("single-step mode: with a callable beta TF 1's beta1_power is a running product of "
                              "the betas seen, which no iterations count sets")
        t = int(state["iterations"])
        accumulators = self.opt._get_beta_accumulators() if t else None
        if accumulators is not None:
            for acc, name, default in zip(accumulators, ("beta_1", "beta_2"), (0.9, 0.999)):
                beta = np.float64(np.float32(hyper.get(name, default)))  # TF 1 holds the beta as float32
                acc.assign(np.float32(beta ** (t + 1)))  # the power the next step uses
        for n, var in self.vars.items():
            dt = var.dtype.as_numpy_dtype
            for slot in ("m", "v"):
                held, value = self.opt.get_slot(var, slot), state[n].get(slot)
                if held is not None and value is not None:
                    held.assign(value.astype(dt))
            var.assign(state[n]["variable"].astype(dt))
