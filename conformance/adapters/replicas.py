"""What the in-process distributed execution modes share: the devices they need, each replica's share of a step's
gradient, and the twin on one device.

TensorFlow's ``mirrored`` modes (``MirroredStrategy`` over logical CPU devices) and JAX's ``sharded`` and ``pmap``
modes (host devices) run every replica in the pytest process.  Both frameworks fix their devices when they first
start: ``prepare`` configures them before the candidate's module is imported (``drive/resolve.py``).  This module
imports no framework at import time.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

#: Execution modes (per adapter) whose replicas live in this process, and the framework whose devices they need.
TF_MODES = {"mirrored": "eager", "mirrored-function": "function"}  # mode -> the one-device mode it is twinned with
JAX_MODES = {"sharded": "jit", "pmap": "jit"}
XLA_DEVICES = "--xla_force_host_platform_device_count"
#: The twin of a distributed mode: the same candidate on one device (docs/adapters.md, "Distributed modes").
TWIN_LABEL = "one device"


def prepare(adapter: str, execution: str | None, world_size: int) -> None:
    """Give the framework ``world_size`` CPU devices before it starts, when ``execution`` is a distributed mode of
    ``adapter`` run in process; RuntimeError when the framework has already started with other devices."""
    if execution in JAX_MODES and adapter == "optax":
        _xla_host_devices(world_size)
    elif execution in TF_MODES and adapter in ("tf_keras", "keras3"):
        from conformance.adapters.tf_ops import logical_cpus

        logical_cpus(world_size)


def _xla_host_devices(n: int) -> None:
    """``XLA_FLAGS=--xla_force_host_platform_device_count=n``: read by JAX once, when its CPU backend starts."""
    import sys

    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith(XLA_DEVICES)]
    os.environ["XLA_FLAGS"] = " ".join(flags + [f"{XLA_DEVICES}={n}"])
    if "jax" in sys.modules:
        import jax

        if len(jax.devices("cpu")) < n:
            raise RuntimeError(f"JAX started before the kit could give it {n} CPU devices (it has "
                               f"{len(jax.devices('cpu'))}): set XLA_FLAGS={XLA_DEVICES}={n} before importing jax")


#: What every item of a distributed mode also tests (spec section R): the second for a vector with sparse gradients.
CLAUSES = ("ADAM-TF2-DIST-1", "ADAM-TF2-DIST-2")


def clauses(record: dict) -> list[str]:
    """The spec clauses a vector's item tests in a distributed mode, besides the vector's own (from its record)."""
    sparse = any(isinstance(g, dict) and "indices" in g for step in record.get("steps", [])
                 for g in step.get("gradients", {}).values())
    return list(CLAUSES if sparse else CLAUSES[:1])


def world(adapter: Any) -> tuple[int, str]:
    """The adapter's world size and split (``--world-size``, ``--split``; 2 and ``even`` by default)."""
    return int(getattr(adapter, "world_size", 2) or 2), str(getattr(adapter, "split", "even") or "even")


def shares(g: Any, n: int, split: str, dtype: Any) -> list[Any]:
    """Each replica's share of the harness gradient ``g`` (float64 array or IndexedSlices), in ``dtype``, for an engine
    that sums the replicas' gradients: ``even`` gives every replica g / n; ``one-rank`` gives replica 0 all of it and
    the others -0.0, which adds nothing to any number, -0.0 included (an IndexedSlices of no rows).  Their sum is
    ``g`` in ``dtype`` bit for bit when n is a power of two and no share falls below the dtype's normal range (the
    vectors' gradients are far from it)."""
    from reference.adam import IndexedSlices

    if g is None:
        return [None] * n
    dtype, count = np.dtype(dtype), np.asarray(n, dtype=dtype)
    if hasattr(g, "indices"):
        values = np.asarray(g.values).astype(dtype)
        empty = IndexedSlices(values[:0], np.asarray(g.indices)[:0], g.dense_shape)
        if split == "one-rank":
            return [IndexedSlices(values, g.indices, g.dense_shape)] + [empty] * (n - 1)
        return [IndexedSlices(values / count, g.indices, g.dense_shape) for _ in range(n)]
    full = np.asarray(g).astype(dtype)
    if split == "one-rank":
        return [full] + [np.full_like(full, -0.0) for _ in range(n - 1)]
    return [full / count for _ in range(n)]
