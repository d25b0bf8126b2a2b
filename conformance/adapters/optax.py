"""Adapter for ``optax.adam`` and ``optax.amsgrad`` (factory functions).

The transformation is built anew before every step from that step's
learning rate, betas and epsilon, as Python floats (optax's state holds no
hyperparameters, so it carries over; Python floats stay weakly typed, so the
moments keep the parameters' dtype, as in a user's code).  Translations
(off with ``raw``): the candidate is judged with the profile Algorithm1Epsilon (optax's epsilon placement);
an IndexedSlices gradient is densified (optax has no sparse type).  A variable
not passed yet gets a zero gradient (its moments stay zero, so it does not
move); a None gradient for a variable already updated cannot be expressed
(optax would decay its moments).
JAX runs with 64-bit floats enabled so float64 vectors run in float64.

Execution modes (``--execution``): ``eager`` (each JAX operation dispatched on
its own) and ``jit`` (the whole step, ``update`` and ``apply_updates``, under
``jax.jit`` with the hyperparameters as traced arguments, as a training loop
compiles it).
"""

from __future__ import annotations

import functools
import inspect
import os
import pickle
from typing import Any

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

from conformance.adapters.base import Adapter, densify, per_step_numbers, subnormal  # noqa: E402
from conformance.dtypes import NUMPY_DTYPES  # noqa: E402
from conformance.features import Feature  # noqa: E402

NAMES = {"learning_rate": "learning_rate", "beta_1": "b1", "beta_2": "b2", "epsilon": "eps"}


class OptaxAdapter(Adapter):
    name = "optax"
    framework = "optax"
    executions = {"eager": "update and apply_updates dispatched operation by operation",
                  "jit": "the step (update, apply_updates) under jax.jit, hyperparameters traced"}

    @property
    def is_amsgrad(self) -> bool:
        return getattr(self.candidate, "__name__", "") == "amsgrad"

    @property
    def translations(self) -> list[str]:
        out = ["callables, schedules and decay evaluated by the adapter before each step",
               "variables not yet passed get zero gradients"]
        if not self.raw:
            out = ["epsilon judged with the profile Algorithm1Epsilon (optax adds eps to the bias-corrected root)",
                   "IndexedSlices densified (duplicates summed)"] + out
        return out

    def profile(self) -> tuple[str, ...]:
        return () if self.raw else ("Algorithm1Epsilon",)

    def versions(self) -> dict[str, str]:
        return {"optax": optax.__version__, "jax": jax.__version__}

    def _device(self) -> Any:
        return jax.devices("gpu" if self.device == "gpu" else "cpu")[0]

    def device_used(self) -> str:
        return str(self._device())

    def lacking(self) -> dict[Feature, str]:
        out = {Feature.PLAIN_ADAM: "optax.amsgrad always keeps the maximum; use optax:adam"} if self.is_amsgrad else {
            Feature.AMSGRAD: "optax.adam has no amsgrad switch; use optax:amsgrad"}
        out[Feature.NONE_GRADIENT] = "optax updates every leaf at every step: a variable cannot take a None gradient"
        out[Feature.CONFIG_ROUND_TRIP] = "an optax transformation has no get_config / from_config"
        if self.raw:
            out[Feature.SPARSE] = "optax has no sparse gradient type"
        return out

    def probe(self) -> Any:
        return self.candidate(0.001)

    def flushes_subnormals(self, dtype: str) -> bool:
        x = jax.device_put(jnp.asarray(subnormal(dtype), dtype=NUMPY_DTYPES[dtype]), self._device())
        return float(x * jnp.ones((), dtype=x.dtype)) == 0.0

    checkpoint_formats = {
        "pickle": "pickle of the parameters and the optimizer state pytree (jax.device_get), loaded and put back on "
                  "the device in the new process (orbax and flax are not installed)"}

    def start(self, spec: Any) -> "OptaxSession":
        return OptaxSession(self.candidate, spec, self._device(), self.raw, self.execution)

    def checkpoint_save(self, session: Any, fmt: str, directory: str) -> None:
        with open(os.path.join(directory, "state.pickle"), "wb") as f:
            pickle.dump(jax.device_get({"params": session.params, "opt_state": session.state}), f)

    def checkpoint_restore(self, spec: Any, fmt: str, directory: str) -> "OptaxSession":
        session = self.start(spec)
        with open(os.path.join(directory, "state.pickle"), "rb") as f:
            saved = jax.device_put(pickle.load(f), self._device())
        session.params, session.state = saved["params"], saved["opt_state"]
        return session


def _step(factory: Any, params: Any, state: Any, grads: Any, hp: dict[str, float]) -> tuple[Any, Any]:
    """One step: the transformation built from this step's hyperparameters, its update, and the new parameters."""
    tx = factory(**{NAMES[k]: v for k, v in hp.items()}, eps_root=0.0)
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state


@functools.lru_cache(maxsize=None)
def _jitted(factory: Any) -> Any:
    """``_step`` for ``factory`` under ``jax.jit``, one per factory, so items of the same shapes share compilations."""
    return jax.jit(functools.partial(_step, factory))


class OptaxSession:
    def __init__(self, factory: Any, spec: Any, device: Any, raw: bool, execution: str = "eager") -> None:
        self.spec, self.raw, self.device = spec, raw, device
        self.factory = factory
        sig = inspect.signature(factory).parameters
        self.own_defaults = {k: float(sig[v].default) for k, v in NAMES.items() if k != "learning_rate"}
        self.own_defaults["learning_rate"] = 0.001  # optax requires a learning rate: the page's default
        self.params = {n: jax.device_put(jnp.asarray(v.astype(NUMPY_DTYPES[spec.dtype_of(n)])), device)
                       for n, v in spec.variables.items()}
        self.state = self._transform(self.own_defaults).init(self.params)
        self.step = _jitted(factory) if execution == "jit" else functools.partial(_step, factory)

    def _transform(self, hp: dict[str, float]) -> Any:
        return self.factory(**{NAMES[k]: v for k, v in hp.items()}, eps_root=0.0)

    def apply(self, grads: dict[str, Any], step: int) -> None:
        hp = per_step_numbers({} if self.spec.defaults else self.spec.hyper, step, self.own_defaults)
        full = {}
        for n, p in self.params.items():
            g = grads.get(n)
            full[n] = jnp.zeros_like(p) if g is None else jnp.asarray(densify(g, tuple(p.shape), p.dtype))
        self.params, self.state = self.step(self.params, self.state, full, hp)

    def _inner(self) -> Any:
        return self.state[0]  # ScaleByAdamState / ScaleByAmsgradState, then the learning-rate scaling's state

    def read(self) -> dict:
        inner = self._inner()
        out: dict[str, Any] = {"iterations": int(inner.count)}
        for n, p in self.params.items():
            out[n] = {"variable": np.array(p), "m": np.array(inner.mu[n]), "v": np.array(inner.nu[n]),
                      "vhat": np.array(inner.nu_max[n]) if hasattr(inner, "nu_max") else None}
        return out

    def load(self, state: dict) -> None:
        """Rebuild the (immutable) state with the given moments and counts."""
        as_jnp = lambda n, x: jnp.asarray(x.astype(self.params[n].dtype))  # noqa: E731
        names = [n for n in self.params if state[n]["m"] is not None]
        inner = self._inner()
        fields = {"count": jnp.asarray(state["iterations"], dtype=inner.count.dtype),
                  "mu": {**inner.mu, **{n: as_jnp(n, state[n]["m"]) for n in names}},
                  "nu": {**inner.nu, **{n: as_jnp(n, state[n]["v"]) for n in names}}}
        if hasattr(inner, "nu_max"):
            fields["nu_max"] = {**inner.nu_max, **{n: as_jnp(n, state[n]["vhat"]) for n in names}}
        self.state = (inner._replace(**fields),) + tuple(self.state[1:])
        self.params = {n: jax.device_put(as_jnp(n, state[n]["variable"]), self.device) for n in self.params}
