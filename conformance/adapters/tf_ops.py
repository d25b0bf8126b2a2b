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


# --- the mirrored modes: replicas on logical CPU devices of this process ------------------------------------------

_STRATEGY: dict[int, Any] = {}


def logical_cpus(n: int) -> None:
    """Split the CPU into ``n`` logical devices; TensorFlow allows it only before its devices start (the kit calls it
    before the candidate is imported).  RuntimeError when it started with another number."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    have = tf.config.get_logical_device_configuration(cpu)
    if have is not None and len(have) == n:
        return
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])
    except RuntimeError:
        raise RuntimeError(f"TensorFlow started before the kit could give it {n} logical CPU devices") from None


def mirrored_strategy(n: int) -> Any:
    """The process's one ``MirroredStrategy`` over ``n`` logical CPUs, made once and reused by every item: a second
    strategy in the same process makes later collectives abort."""
    if n not in _STRATEGY:
        if _STRATEGY:
            raise RuntimeError(f"one MirroredStrategy per process: this one has {next(iter(_STRATEGY))} replicas")
        devices = [d.name for d in tf.config.list_logical_devices("CPU")][:n]
        if len(devices) < n:
            raise RuntimeError(f"mirrored over {n} replicas needs {n} logical CPU devices; TensorFlow has "
                               f"{len(devices)}")
        tf.get_logger().setLevel("ERROR")  # its advice to wrap eager runs in tf.function, once per call
        _STRATEGY[n] = tf.distribute.MirroredStrategy(devices)
    return _STRATEGY[n]


def per_replica(strategy: Any, split_up: dict[str, list], dtypes: dict[str, Any]) -> dict:
    """The call's gradients as per-replica values: ``split_up`` maps each variable with a gradient to every replica's
    share (``replicas.shares``), given to that replica as a tensor or ``tf.IndexedSlices`` of ``dtypes[name]``."""

    def value(ctx: Any) -> dict:
        return {k: tf_gradient(parts[ctx.replica_id_in_sync_group], dtypes[k]) for k, parts in split_up.items()}

    return strategy.experimental_distribute_values_from_function(value)


def replica_values(x: Any) -> list[np.ndarray]:
    """Every replica's copy of a mirrored variable (a Keras 3 variable wraps the TF one; a plain variable has one)."""
    inner = x if hasattr(x, "values") else getattr(x, "_value", x)
    return [v.numpy() for v in getattr(inner, "values", (inner,))]
