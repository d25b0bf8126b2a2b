"""TensorFlow helpers shared by the tf_keras adapter and the Keras 3 adapter on the TensorFlow backend."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

from conformance.adapters.base import subnormal  # noqa: E402

TF_DTYPES = {"float16": tf.float16, "bfloat16": tf.bfloat16, "float32": tf.float32, "float64": tf.float64}


def tf_device(device: str) -> str:
    """The TF device string for ``--device``; RuntimeError when no GPU is visible."""
    if device == "gpu":
        if not tf.config.list_physical_devices("GPU"):
            raise RuntimeError("--device=gpu: TensorFlow sees no GPU")
        return "/GPU:0"
    return "/CPU:0"


def tf_flushes(dtype: str, device: str) -> bool:
    """Whether TensorFlow's kernels on ``device`` flush a subnormal to zero in ``dtype``; measured, not assumed."""
    with tf.device(device):
        x = tf.constant(subnormal(dtype), dtype=TF_DTYPES[dtype]) * tf.constant(1.0, dtype=TF_DTYPES[dtype])
    return float(x.numpy()) == 0.0


def indexed_slices(values: Any, indices: Any, dense_shape: Any, dtype: Any) -> tf.IndexedSlices:
    """A ``tf.IndexedSlices`` of ``values`` (in ``dtype``) at ``indices`` of a variable of ``dense_shape``."""
    return tf.IndexedSlices(tf.constant(np.asarray(values), dtype=dtype), tf.constant(np.asarray(indices)),
                            tf.constant(list(dense_shape), dtype=tf.int64))


def tf_gradient(g: Any, dtype: Any) -> Any:
    """A harness gradient as a TF tensor or ``tf.IndexedSlices`` (None stays None)."""
    if g is None:
        return None
    if hasattr(g, "indices"):
        return indexed_slices(g.values, g.indices, g.dense_shape, dtype)
    return tf.constant(np.asarray(g), dtype=dtype)


#: ADAM-API-ALIAS-1: the page's name for the class, then its aliases.
PAGE_NAMES = ("tf.keras.optimizers.Adam", "tf.optimizers.Adam", "tf.compat.v2.keras.optimizers.Adam",
              "tf.compat.v2.optimizers.Adam", "tf.compat.v1.keras.optimizers.Adam")


def page_aliases() -> dict[str, Any]:
    """Each of ``PAGE_NAMES`` -> the object it names in the installed TensorFlow (None where it names nothing)."""
    out: dict[str, Any] = {}
    for name in PAGE_NAMES:
        obj: Any = tf
        for part in name.split(".")[1:]:
            obj = getattr(obj, part, None)
        out[name] = obj
    return out


def describe_aliases(aliases: dict[str, Any]) -> dict[str, str]:
    """The same, as ``module.qualname`` strings for the report header."""
    return {k: "absent" if v is None else f"{getattr(v, '__module__', '?')}.{getattr(v, '__qualname__', repr(v))}"
            for k, v in aliases.items()}
