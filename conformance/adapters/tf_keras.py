"""Adapter for ``tf_keras.optimizers.legacy.Adam``: TF 2.0's optimizer_v2 code line, the page's full API.

Hyperparameter callables and a ``LearningRateSchedule`` go to the optimizer
as they are; nothing is translated.  TF rejects a callable epsilon, which is
reported as unsupported.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras

from conformance.adapters.base import Adapter, Batches, weights_in_spec_order
from conformance.adapters.numpy_port import constructor_kwargs
from conformance.adapters.tf_ops import TF_DTYPES, indexed_slices, tf_device, tf_flushes, tf_gradient
from conformance.features import Feature


class _Schedule(tf_keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __call__(self, step: Any) -> float:
        return self.inner(int(step.numpy()) if hasattr(step, "numpy") else int(step))

    def get_config(self) -> dict:
        return {}


class TfKerasLegacyAdapter(Adapter):
    name = "tf_keras"
    framework = "tensorflow"
    claims_v2_api = True

    def versions(self) -> dict[str, str]:
        return {"tensorflow": tf.__version__, "tf_keras": tf_keras.__version__}

    def device_used(self) -> str:
        with tf.device(tf_device(self.device)):
            return tf.Variable(0.0).device or "unknown"

    def lacking(self) -> dict[Feature, str]:
        out = {Feature.CALLABLE_EPSILON: "TensorFlow optimizers reject a callable epsilon (convert_to_tensor of a function)"}
        if self.device == "gpu":
            out[Feature.BFLOAT16] = "TensorFlow has no GPU bfloat16 Adam kernel"
        return out

    def flushes_subnormals(self, dtype: str) -> bool:
        return tf_flushes(dtype, tf_device(self.device))

    def start(self, spec: Any) -> "TfSession":
        return TfSession(self.candidate, spec, tf_device(self.device))

    def v2_api(self) -> Any:
        return TfApi(self.candidate, tf_device(self.device))


class TfSession:
    def __init__(self, cls: Any, spec: Any, device: str) -> None:
        self.device, self.dtype, self.amsgrad = device, TF_DTYPES[spec.dtype], spec.amsgrad
        with tf.device(device):
            self.opt = cls(**constructor_kwargs(spec, _Schedule))
            if spec.round_trip:
                self.opt = type(self.opt).from_config(self.opt.get_config())
            self.vars = {n: tf.Variable(v, dtype=self.dtype, name=n) for n, v in spec.variables.items()}
        self.batches = Batches()

    def apply(self, grads: dict[str, Any], step: int) -> None:
        with tf.device(self.device):
            self.opt.apply_gradients([(tf_gradient(g, self.dtype), self.vars[n]) for n, g in grads.items()])
        self.batches.note(grads)

    def read(self) -> dict:
        out: dict[str, Any] = {"iterations": int(self.opt.iterations.numpy())}
        for n, var in self.vars.items():
            out[n] = {"variable": var.numpy()}
            for slot in ("m", "v", "vhat"):
                try:
                    out[n][slot] = self.opt.get_slot(var, slot).numpy()
                except (KeyError, ValueError):
                    out[n][slot] = None
        return out

    def load(self, state: dict) -> None:
        """Through the optimizer's own ``set_weights`` (ADAM-API-WEIGHTS-2), then the variables."""
        dt = self.dtype.as_numpy_dtype
        self.opt.set_weights(weights_in_spec_order(state, self.batches, self.amsgrad, lambda x: x.astype(dt)))
        for n, var in self.vars.items():
            var.assign(state[n]["variable"].astype(dt))


class TfApi:
    """What the optimizer_v2 API checks need, for TensorFlow."""

    def __init__(self, cls: Any, device: str) -> None:
        self.cls, self.device = cls, device

    def make(self, **kwargs: Any) -> Any:
        return self.cls(**kwargs)

    def variable(self, values: Any, dtype: str = "float32") -> Any:
        with tf.device(self.device):
            return tf.Variable(np.array(values), dtype=TF_DTYPES[dtype])

    def gradient(self, values: Any, dtype: str = "float32") -> Any:
        return tf.constant(np.array(values), dtype=TF_DTYPES[dtype])

    def sparse(self, values: Any, indices: Any, shape: Any, dtype: str = "float32") -> Any:
        return indexed_slices(np.array(values), np.array(indices), shape, TF_DTYPES[dtype])

    def numpy(self, x: Any) -> np.ndarray:
        x = x.numpy() if hasattr(x, "numpy") else x
        return np.asarray(x, dtype=np.int64 if np.asarray(x).dtype.kind in "iu" else np.float64)

    def minimize(self, opt: Any, loss: Any, var_list: list) -> Any:
        """``loss`` maps the list of variables to a scalar; TF differentiates it."""
        with tf.device(self.device):
            return opt.minimize(lambda: loss(var_list), var_list)

    def raises(self) -> tuple[type[BaseException], ...]:
        return (ValueError, tf.errors.InvalidArgumentError)

