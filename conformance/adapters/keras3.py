"""Adapter for Keras 3's ``keras.optimizers.Adam`` (also ``tensorflow.keras.optimizers.Adam`` from TF 2.16 on).

Runs on whichever backend Keras loaded (``KERAS_BACKEND``).  Keras 3 accepts
only a callable learning rate and ignores ``decay``: those vectors are
unsupported.  Translations (off with ``raw``): every variable is registered
with ``build()`` before the first step, since Keras 3 refuses variables it
first sees later; on the JAX and torch backends a sparse gradient is
densified.  Slots are read from Keras's ``_momentums`` / ``_velocities`` /
``_velocity_hats`` lists.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
if os.environ.get("KERAS_BACKEND") == "jax":
    # Without 64-bit mode JAX silently stores float64 variables as float32.
    import jax

    jax.config.update("jax_enable_x64", True)

import keras  # noqa: E402

from conformance.adapters import Adapter, densify  # noqa: E402
from conformance.adapters.numpy_port import constructor_kwargs  # noqa: E402
from vectors.scenarios import NUMPY_DTYPES  # noqa: E402

BACKEND = keras.backend.backend()


class _Schedule(keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __call__(self, step: Any) -> float:
        return self.inner(int(keras.ops.convert_to_numpy(step)))


def _device_scope(device: str) -> Any:
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return tf.device("/GPU:0" if device == "gpu" else "/CPU:0")
    return keras.device("gpu:0" if device == "gpu" else "cpu:0")


class Keras3Adapter(Adapter):
    name = "keras3"
    framework = "keras"

    @property
    def translations(self) -> list[str]:
        if self.raw:
            return []
        out = ["variables registered with build() before the first step"]
        if BACKEND == "jax":
            out.append("JAX 64-bit mode enabled, so float64 variables stay float64")
        if BACKEND != "tensorflow":
            out.append("IndexedSlices densified (duplicates summed)")
        return out

    def versions(self) -> dict[str, str]:
        out = {"keras": keras.__version__, "backend": BACKEND}
        if BACKEND == "tensorflow":
            import tensorflow as tf

            out["tensorflow"] = tf.__version__
        return out

    def device_used(self) -> str:
        with _device_scope(self.device):
            value = keras.Variable(np.zeros(1, dtype=np.float32)).value
        return str(getattr(value, "device", None) or getattr(value, "devices", lambda: "?")())

    def unsupported(self, vector: Any, dtype: str) -> str | None:
        hp = vector.record["hyperparameters"]
        for name in ("beta_1", "beta_2", "epsilon"):
            if isinstance(hp[name], dict):
                return f"Keras 3 accepts only a callable learning rate, not a callable {name}"
        if hp.get("decay"):
            return "Keras 3 ignores the legacy decay keyword (with a warning)"
        sparse = any(g and "indices" in g for s in vector.steps for g in s["gradients"].values())
        if sparse and self.raw and BACKEND != "tensorflow":
            return f"Keras 3 on the {BACKEND} backend has no IndexedSlices gradient"
        return None

    def start(self, spec: Any) -> "Keras3Session":
        return Keras3Session(self.candidate, spec, self.device, self.raw)


class Keras3Session:
    def __init__(self, cls: Any, spec: Any, device: str, raw: bool) -> None:
        self.spec, self.device = spec, device
        with _device_scope(device):
            self.opt = cls(**constructor_kwargs(spec, _Schedule))
            self.vars = {n: keras.Variable(v.astype(NUMPY_DTYPES[spec.dtype]), dtype=spec.dtype, name=n)
                         for n, v in spec.variables.items()}
            if not raw:
                self.opt.build(list(self.vars.values()))

    def _grad(self, g: Any, var: Any) -> Any:
        if g is None:
            return None
        if hasattr(g, "indices") and BACKEND == "tensorflow":
            import tensorflow as tf

            return tf.IndexedSlices(tf.constant(np.asarray(g.values), dtype=self.spec.dtype),
                                    tf.constant(np.asarray(g.indices)), tf.constant(list(g.dense_shape), dtype=tf.int64))
        return keras.ops.convert_to_tensor(densify(g, tuple(var.shape), NUMPY_DTYPES[self.spec.dtype]), dtype=self.spec.dtype)

    def apply(self, grads: dict[str, Any], step: int) -> None:
        with _device_scope(self.device):
            self.opt.apply_gradients([(self._grad(g, self.vars[n]), self.vars[n]) for n, g in grads.items()])

    def read(self) -> dict:
        out: dict[str, Any] = {"iterations": int(keras.ops.convert_to_numpy(self.opt.iterations))}
        built = getattr(self.opt, "built", False)
        for n, var in self.vars.items():
            out[n] = {"variable": np.asarray(keras.ops.convert_to_numpy(var), dtype=np.float64)}
            try:
                i = self.opt._get_variable_index(var) if built else None
            except KeyError:
                i = None
            for slot, attr in (("m", "_momentums"), ("v", "_velocities"), ("vhat", "_velocity_hats")):
                lists = getattr(self.opt, attr, None)
                ok = i is not None and lists and lists[i] is not None
                out[n][slot] = np.asarray(keras.ops.convert_to_numpy(lists[i]), dtype=np.float64) if ok else None
        return out
