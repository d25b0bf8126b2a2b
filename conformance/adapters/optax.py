"""Adapter for ``optax.adam`` and ``optax.amsgrad`` (factory functions).

The transformation is built anew before every step from that step's
learning rate, betas and epsilon, as Python floats (optax's state holds no
hyperparameters, so it carries over; Python floats stay weakly typed, so the
moments keep the parameters' dtype, as in a user's code).  Translations
(off with ``raw``): ``optax.adam`` is judged with the profile Algorithm1Epsilon (optax's epsilon placement);
``optax.amsgrad`` is built with ``bias_correction_nu=False`` (the maximum of the raw v) and the learning rate
``lr * sqrt(1 - beta_2**t)`` at step t, which makes it TF 2.0's AMSGrad, epsilon placement included
(``tests/test_claims.py``); an IndexedSlices gradient is densified (optax has no sparse type).  A variable
not passed yet gets a zero gradient (its moments stay zero, so it does not
move); a None gradient for a variable already updated cannot be expressed
(optax would decay its moments).
JAX runs with 64-bit floats enabled so float64 vectors run in float64.

Execution modes (``--execution``): ``eager`` (each JAX operation dispatched on
its own) and ``jit`` (the whole step, ``update`` and ``apply_updates``, under
``jax.jit`` with the hyperparameters as traced arguments, as a training loop
compiles it).  Distributed over ``--world-size`` host devices (``XLA_FLAGS=--xla_force_host_platform_device_count``,
set by the kit before JAX starts): ``sharded``, the jitted step with parameters, state and gradients under a
``NamedSharding`` (each tensor split along its first axis that the devices divide evenly, replicated when none
does: JAX refuses uneven shards); ``pmap``, the step under ``jax.pmap`` on replicated parameters, each device given
its share of the gradient and ``lax.pmean`` averaging them.  The twin of both is the same candidate on one device
under ``jit``: jit already differs from eager, so like is compared with like.
"""

from __future__ import annotations

import functools
import inspect
import math
import os
import pickle
from typing import Any

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

from conformance.adapters import replicas  # noqa: E402
from conformance.adapters.base import Adapter, densify, per_step_numbers, subnormal  # noqa: E402
from conformance.dtypes import NUMPY_DTYPES  # noqa: E402
from conformance.features import Feature  # noqa: E402

AMSGRAD_TRANSLATION = ("optax.amsgrad built with bias_correction_nu=False (the maximum of the raw v) and the learning "
                       "rate lr * sqrt(1 - beta_2**t) at step t: TF 2.0's AMSGrad, epsilon placement included")
NAMES = {"learning_rate": "learning_rate", "beta_1": "b1", "beta_2": "b2", "epsilon": "eps"}


class OptaxAdapter(Adapter):
    name = "optax"
    no_clipping = ("optax.adam has no clipping argument: clipping is a transformation chained before it "
                   "(optax.clip_by_global_norm)")
    framework = "optax"
    executions = {"eager": "update and apply_updates dispatched operation by operation",
                  "jit": "the step (update, apply_updates) under jax.jit, hyperparameters traced",
                  "sharded": "the jitted step with parameters, state and gradients sharded over host devices "
                             "(NamedSharding)",
                  "pmap": "the step under jax.pmap over host devices, the replicas' gradients averaged by lax.pmean"}
    distributed_executions = tuple(replicas.JAX_MODES)  # --world-size and --split apply to these
    twin_label, twin_binding = replicas.TWIN_LABEL, False

    def twin(self) -> "OptaxAdapter | None":
        """A distributed mode's twin: the same candidate on one device under jit (like with like)."""
        if self.execution not in replicas.JAX_MODES:
            return None
        return type(self)(self.candidate, raw=self.raw, device=self.device, execution=replicas.JAX_MODES[self.execution])

    @property
    def is_amsgrad(self) -> bool:
        return getattr(self.candidate, "__name__", "") == "amsgrad"

    @property
    def translations(self) -> list[str]:
        out = ["callables, schedules and decay evaluated by the adapter before each step",
               "variables not yet passed get zero gradients"]
        if not self.raw:
            out = [AMSGRAD_TRANSLATION if self.is_amsgrad else
                   "epsilon judged with the profile Algorithm1Epsilon (optax adds eps to the bias-corrected root)",
                   "IndexedSlices densified (duplicates summed)"] + out
        if self.execution == "sharded":
            out.append(f"parameters, state and gradients sharded over {replicas.world(self)[0]} devices along the first "
                       "axis they divide evenly (replicated otherwise)")
        if self.execution == "pmap":
            n, split = replicas.world(self)
            out.append(f"each step's gradient split among {n} replicas ({split}: their mean is the vector's gradient)")
        return out

    def profile(self) -> tuple[str, ...]:
        return () if self.raw or self.is_amsgrad else ("Algorithm1Epsilon",)

    @functools.cached_property
    def factory(self) -> Any:
        """What each step's transformation is built with: the candidate, or for a translated ``optax.amsgrad`` the
        candidate keeping the maximum of the raw v (made once, so that jit's compilations are shared)."""
        if self.is_amsgrad and not self.raw:
            return functools.partial(self.candidate, bias_correction_nu=False)
        return self.candidate

    def versions(self) -> dict[str, str]:
        return {"optax": optax.__version__, "jax": jax.__version__}

    def _device(self) -> Any:
        return jax.devices("gpu" if self.device == "gpu" else "cpu")[0]

    def device_used(self) -> str:
        if self.execution in replicas.JAX_MODES:
            return ", ".join(str(d) for d in self._devices())
        return str(self._device())

    def _devices(self) -> list:
        """The host devices a distributed mode runs on (``--world-size`` of them)."""
        n = replicas.world(self)[0]
        devices = jax.devices("cpu")
        if self.device != "cpu" or len(devices) < n:
            raise ValueError(f"the {self.execution} mode runs on {n} host CPU devices; JAX has {len(devices)} "
                             f"(use --device=cpu; XLA_FLAGS={replicas.XLA_DEVICES}={n} must be set before jax starts)")
        return devices[:n]

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
                  "the device in the new process",
        "orbax": "orbax.checkpoint.StandardCheckpointer of the parameters and the optimizer state pytree, restored in the "
                 "new process into the tree of a fresh optimizer (its structure and dtypes)"}

    def start(self, spec: Any) -> "OptaxSession":
        translate = self.is_amsgrad and not self.raw
        if self.execution == "sharded":
            return ShardedOptaxSession(self.factory, spec, self._devices(), self.raw, translate)
        if self.execution == "pmap":
            return PmapOptaxSession(self.factory, spec, self._devices(), self.raw, replicas.world(self)[1], translate)
        return OptaxSession(self.factory, spec, self._device(), self.raw, self.execution, translate_amsgrad=translate)

    def checkpoint_save(self, session: Any, fmt: str, directory: str) -> None:
        tree = {"params": session.params, "opt_state": session.state}
        if fmt == "orbax":
            import orbax.checkpoint as ocp

            with ocp.StandardCheckpointer() as saver:  # waits for the asynchronous write on exit
                saver.save(os.path.join(os.path.abspath(directory), "orbax"), tree)
            return
        with open(os.path.join(directory, "state.pickle"), "wb") as f:
            pickle.dump(jax.device_get(tree), f)

    def checkpoint_restore(self, spec: Any, fmt: str, directory: str) -> "OptaxSession":
        session = self.start(spec)
        if fmt == "orbax":
            import orbax.checkpoint as ocp

            # As orbax's guide restores: into the tree of a freshly built optimizer, which gives structure and dtypes.
            target = {"params": session.params, "opt_state": session.state}
            with ocp.StandardCheckpointer() as loader:
                saved = loader.restore(os.path.join(os.path.abspath(directory), "orbax"), target)
        else:
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
    def __init__(self, factory: Any, spec: Any, device: Any, raw: bool, execution: str = "eager",
                 translate_amsgrad: bool = False) -> None:
        self.spec, self.raw, self.device = spec, raw, device
        self.translate_amsgrad = translate_amsgrad
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

    def numbers(self, step: int) -> dict[str, float]:
        """The hyperparameters of 0-based ``step`` as numbers, the learning rate translated for amsgrad."""
        hp = per_step_numbers({} if self.spec.defaults else self.spec.hyper, step, self.own_defaults)
        if self.translate_amsgrad:  # optax divides m by 1 - beta_1**t itself; TF 2.0's alpha has sqrt(1 - beta_2**t) too
            hp["learning_rate"] *= math.sqrt(1.0 - hp["beta_2"] ** (step + 1))
        return hp

    def apply(self, grads: dict[str, Any], step: int) -> None:
        hp = self.numbers(step)
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


def _sharding(mesh: Any, shape: tuple[int, ...]) -> Any:
    """Split along the first axis the mesh's devices divide evenly; replicated when none does."""
    from jax.sharding import NamedSharding, PartitionSpec

    n = mesh.devices.size
    axis = next((i for i, d in enumerate(shape) if d and d % n == 0), None)
    return NamedSharding(mesh, PartitionSpec(*([None] * axis), "devices") if axis is not None else PartitionSpec())


class ShardedOptaxSession(OptaxSession):
    """The jitted step on parameters, state and gradients sharded over host devices (``NamedSharding``)."""

    def __init__(self, factory: Any, spec: Any, devices: list, raw: bool, translate_amsgrad: bool) -> None:
        from jax.sharding import Mesh

        self.mesh = Mesh(np.array(devices), ("devices",))
        super().__init__(factory, spec, devices[0], raw, "jit", translate_amsgrad)
        self.place = {n: _sharding(self.mesh, tuple(p.shape)) for n, p in self.params.items()}
        self.params = {n: jax.device_put(p, self.place[n]) for n, p in self.params.items()}
        self.state = self._placed(self.state)

    def _placed(self, state: Any) -> Any:
        """The optimizer state with every per-variable moment placed like its variable, the counts replicated."""
        from jax.sharding import NamedSharding, PartitionSpec

        inner = state[0]
        fields = {k: {n: jax.device_put(x, self.place[n]) for n, x in getattr(inner, k).items()}
                  for k in ("mu", "nu", "nu_max") if hasattr(inner, k)}
        fields["count"] = jax.device_put(inner.count, NamedSharding(self.mesh, PartitionSpec()))
        return (inner._replace(**fields),) + tuple(state[1:])

    def apply(self, grads: dict[str, Any], step: int) -> None:
        hp = self.numbers(step)
        full = {}
        for n, p in self.params.items():
            g = grads.get(n)
            dense = np.zeros(p.shape, p.dtype) if g is None else densify(g, tuple(p.shape), p.dtype)
            full[n] = jax.device_put(dense, self.place[n])
        self.params, self.state = self.step(self.params, self.state, full, hp)

    def load(self, state: dict) -> None:
        super().load(state)
        self.params = {n: jax.device_put(p, self.place[n]) for n, p in self.params.items()}
        self.state = self._placed(self.state)


class PmapOptaxSession(OptaxSession):
    """The step under ``jax.pmap``: parameters and state replicated on every device, each device's share of the
    gradient averaged by ``lax.pmean`` before the update, as a data-parallel loop does."""

    def __init__(self, factory: Any, spec: Any, devices: list, raw: bool, split: str, translate_amsgrad: bool) -> None:
        super().__init__(factory, spec, devices[0], raw, "jit", translate_amsgrad)
        self.devices, self.split = devices, split
        self.params = self._replicated(self.params)
        self.state = self._replicated(self.state)
        self.step = _pmapped(factory, len(devices))

    def _replicated(self, tree: Any) -> Any:
        """Every leaf stacked once per device, one copy on each (pmap's layout)."""
        return jax.tree_util.tree_map(lambda x: self._stacked([np.asarray(x)] * len(self.devices)), tree)

    def _stacked(self, parts: list) -> Any:
        """One array whose leading axis holds each device's part, that part on that device."""
        from jax.sharding import Mesh, NamedSharding, PartitionSpec

        mesh = Mesh(np.array(self.devices), ("devices",))
        return jax.device_put(np.stack(parts), NamedSharding(mesh, PartitionSpec("devices")))

    def apply(self, grads: dict[str, Any], step: int) -> None:
        hp = self.numbers(step)
        n, full = len(self.devices), {}
        for name, p in self.params.items():
            g = grads.get(name)
            dense = np.zeros(p.shape[1:]) if g is None else densify(g, tuple(p.shape[1:]), np.float64)
            # An engine that averages: every device gets the whole gradient (even), or device 0 gets n times it.
            parts = [dense] * n if self.split == "even" else [dense * n] + [np.full_like(dense, -0.0)] * (n - 1)
            full[name] = self._stacked([x.astype(p.dtype) for x in parts])
        self.params, self.state = self.step(self.params, self.state, full, hp)

    def read(self) -> dict:
        """Device 0's copy (``replicas`` has them all)."""
        whole = self.params, self.state
        self.params = {n: p[0] for n, p in self.params.items()}
        self.state = jax.tree_util.tree_map(lambda x: x[0], self.state)
        try:
            return super().read()
        finally:
            self.params, self.state = whole

    def replicas(self) -> list[dict]:
        """Every device's copy of the variables and moments."""
        inner = self.state[0]
        out = []
        for r in range(len(self.devices)):
            state: dict[str, Any] = {"iterations": int(inner.count[r])}
            for n, p in self.params.items():
                state[n] = {"variable": np.array(p[r]), "m": np.array(inner.mu[n][r]), "v": np.array(inner.nu[n][r]),
                            "vhat": np.array(inner.nu_max[n][r]) if hasattr(inner, "nu_max") else None}
            out.append(state)
        return out

    def load(self, state: dict) -> None:
        whole = self.params
        self.params = {n: p[0] for n, p in whole.items()}
        self.state = jax.tree_util.tree_map(lambda x: x[0], self.state)
        super().load(state)
        self.params, self.state = self._replicated(self.params), self._replicated(self.state)


@functools.lru_cache(maxsize=None)
def _pmapped(factory: Any, n: int) -> Any:
    """``_step`` for ``factory`` under ``jax.pmap`` over n devices, the gradients first averaged by ``lax.pmean``."""
    def step(params: Any, state: Any, grads: Any, hp: dict[str, float]) -> tuple[Any, Any]:
        return _step(factory, params, state, jax.lax.pmean(grads, "replicas"), hp)
    return jax.pmap(step, axis_name="replicas", in_axes=(0, 0, 0, None))
