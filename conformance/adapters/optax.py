"""Adapter for ``optax.adam`` and ``optax.amsgrad`` (factory functions).

The transformation is wrapped in ``optax.inject_hyperparams`` so the adapter
can set the learning rate, betas and epsilon before every step.  Translations
(off with ``raw``): epsilon hat becomes ``eps = epsilon / sqrt(1 - beta_2**t)``;
an IndexedSlices gradient is densified (optax has no sparse type).  A variable
not passed yet gets a zero gradient (its moments stay zero, so it does not
move); a None gradient for a variable already updated cannot be expressed.
JAX runs with 64-bit floats enabled so float64 vectors run in float64.
"""

from __future__ import annotations

import inspect
from typing import Any

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

from conformance.adapters import Adapter, Unsupported, algorithm1_epsilon, densify, per_step_numbers  # noqa: E402
from vectors.scenarios import NUMPY_DTYPES  # noqa: E402

NAMES = {"learning_rate": "learning_rate", "beta_1": "b1", "beta_2": "b2", "epsilon": "eps"}


class OptaxAdapter(Adapter):
    name = "optax"
    framework = "optax"

    @property
    def is_amsgrad(self) -> bool:
        return getattr(self.candidate, "__name__", "") == "amsgrad"

    @property
    def translations(self) -> list[str]:
        out = ["callables, schedules and decay evaluated by the adapter before each step",
               "variables not yet passed get zero gradients"]
        if not self.raw:
            out = ["epsilon hat -> eps = epsilon / sqrt(1 - beta_2**t) before each step",
                   "IndexedSlices densified (duplicates summed)"] + out
        return out

    def versions(self) -> dict[str, str]:
        return {"optax": optax.__version__, "jax": jax.__version__}

    def _device(self) -> Any:
        return jax.devices("gpu" if self.device == "gpu" else "cpu")[0]

    def device_used(self) -> str:
        return str(self._device())

    def unsupported(self, vector: Any, dtype: str) -> str | None:
        if vector.record["amsgrad"] != self.is_amsgrad:
            return ("optax.amsgrad always keeps the maximum; use optax:adam" if self.is_amsgrad
                    else "optax.adam has no amsgrad switch; use optax:amsgrad")
        sparse = any(g and "indices" in g for s in vector.steps for g in s["gradients"].values())
        if sparse and self.raw:
            return "optax has no sparse gradient type"
        return None

    def start(self, spec: Any) -> "OptaxSession":
        return OptaxSession(self.candidate, spec, self._device(), self.raw)


class OptaxSession:
    def __init__(self, factory: Any, spec: Any, device: Any, raw: bool) -> None:
        self.spec, self.raw, self.dtype = spec, raw, NUMPY_DTYPES[spec.dtype]
        # Hyperparameters in float64 for float64 vectors, float32 otherwise (a bfloat16 beta_2 = 0.999 would be 1.0).
        self.hdtype = jnp.float64 if spec.dtype == "float64" else jnp.float32
        sig = inspect.signature(factory).parameters
        self.own_defaults = {k: float(sig[v].default) for k, v in NAMES.items() if k != "learning_rate"}
        self.own_defaults["learning_rate"] = 0.001  # optax requires a learning rate: the page's default
        tx = optax.inject_hyperparams(factory, hyperparam_dtype=self.hdtype)
        self.tx = tx(**{NAMES[k]: v for k, v in self.own_defaults.items()}, eps_root=0.0)
        self.params = {n: jax.device_put(jnp.asarray(v.astype(self.dtype)), device) for n, v in spec.variables.items()}
        self.state = self.tx.init(self.params)
        self.seen: set[str] = set()

    def apply(self, grads: dict[str, Any], step: int) -> None:
        hp = per_step_numbers({} if self.spec.defaults else self.spec.hyper, step, self.own_defaults)
        if not self.raw:
            hp["epsilon"] = algorithm1_epsilon(hp["epsilon"], hp["beta_2"], step + 1)
        for k, v in hp.items():
            self.state.hyperparams[NAMES[k]] = jnp.asarray(v, dtype=self.hdtype)
        full = {}
        for n, p in self.params.items():
            g = grads.get(n)
            if g is None and n in self.seen:
                raise Unsupported(f"optax updates every leaf at every step: variable {n!r} cannot take a None gradient")
            full[n] = jnp.zeros_like(p) if g is None else jnp.asarray(densify(g, tuple(p.shape), self.dtype))
            if g is not None:
                self.seen.add(n)
        updates, self.state = self.tx.update(full, self.state, self.params)
        self.params = optax.apply_updates(self.params, updates)

    def read(self) -> dict:
        inner = next(s for s in jax.tree_util.tree_leaves(self.state.inner_state, is_leaf=lambda x: hasattr(x, "mu"))
                     if hasattr(s, "mu"))
        as_np = lambda x: np.asarray(x).astype(np.float64)  # noqa: E731
        out: dict[str, Any] = {"iterations": int(inner.count)}
        for n, p in self.params.items():
            out[n] = {"variable": as_np(p), "m": as_np(inner.mu[n]), "v": as_np(inner.nu[n]),
                      "vhat": as_np(inner.nu_max[n]) if hasattr(inner, "nu_max") else None}
        return out
