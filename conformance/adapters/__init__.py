"""Adapters: one small module per framework, translating the harness's requests into its API.

An adapter never computes Adam.  It builds the candidate and its variables,
delivers gradients and hyperparameters, and reads back the variable and
slots.  Where a framework uses another convention it translates faithfully
and lists the translation in ``translations`` (shown in the report); with
``raw=True`` the semantic translations are off.  What the framework cannot
express raises ``Unsupported`` with the reason: a third outcome, neither pass
nor fail.
"""

from __future__ import annotations

import importlib
import math
from typing import Any, Protocol

import numpy as np

from reference.adam import dense_gradient

#: adapter name -> "module:Class" of its implementation (imported only when chosen).
ADAPTERS = {
    "numpy": "conformance.adapters.numpy_port:NumpyPortAdapter",
    "tf_keras": "conformance.adapters.tf_keras:TfKerasLegacyAdapter",
    "keras3": "conformance.adapters.keras3:Keras3Adapter",
    "torch": "conformance.adapters.torch:TorchAdapter",
    "optax": "conformance.adapters.optax:OptaxAdapter",
}


class Unsupported(Exception):
    """The candidate's framework cannot express what the vector asks (e.g. a callable epsilon)."""


class Session(Protocol):
    """One candidate instance with its variables, for one vector and dtype."""

    def apply(self, grads: dict[str, Any], step: int) -> None:
        """One ``apply_gradients`` call; ``grads`` maps names to arrays, IndexedSlices or None."""

    def read(self) -> dict:
        """``{"iterations": int, name: {"variable": array, "m": array|None, ...}}``, arrays in the candidate's dtype."""

    def load(self, state: dict) -> None:
        """Set iterations, variables and existing slots to ``state`` (same layout as ``read``; float64 arrays)."""


def features(record: dict) -> list[str]:
    """What a vector asks of a candidate, as feature names adapters can declare they lack."""
    hp = record["hyperparameters"]
    out = [f"callable {k}" for k in ("learning_rate", "beta_1", "beta_2", "epsilon")
           if isinstance(hp[k], dict) and "callable" in hp[k]]
    if isinstance(hp["learning_rate"], dict) and "schedule" in hp["learning_rate"]:
        out.append("schedule")
    if hp.get("decay"):
        out.append("decay")
    out.append("amsgrad" if record["amsgrad"] else "plain adam")
    seen: set[str] = set()
    for s, step in enumerate(record["steps"]):
        grads = step["gradients"]
        sparse = [g for g in grads.values() if g is not None and "indices" in g]
        if sparse and "sparse" not in out:
            out.append("sparse")
        if any(len(set(g["indices"])) < len(g["indices"]) for g in sparse) and "duplicate indices" not in out:
            out.append("duplicate indices")
        if s > 0 and any(g is not None and name not in seen for name, g in grads.items()) and "late variable" not in out:
            out.append("late variable")
        # A variable updated before and not updated now (None, or not passed) must keep its moments.
        if any(grads.get(name) is None for name in seen) and "None gradient" not in out:
            out.append("None gradient")
        seen |= {name for name, g in grads.items() if g is not None}
    return out


class Adapter:
    """Base class: the candidate, the options, and what every adapter shares."""

    name = "base"
    framework = ""
    claims_v2_api = False  # the optimizer_v2 API of the page (get_slot, get_weights, ...)

    def __init__(self, candidate: Any, *, raw: bool = False, device: str = "cpu") -> None:
        self.candidate, self.raw, self.device = candidate, raw, device

    @property
    def translations(self) -> list[str]:
        """What the adapter translates, in words, for the report header."""
        return []

    def versions(self) -> dict[str, str]:
        """Framework versions for the report."""
        return {}

    def device_used(self) -> str:
        """The device the candidate actually runs on (recorded with every result)."""
        return "cpu"

    def lacking(self) -> dict[str, str]:
        """Features (see ``features``) the candidate cannot express, with the reason."""
        return {}

    def unsupported(self, vector: Any, dtype: str) -> str | None:
        """Why this vector cannot be expressed for this candidate, or None."""
        lacking = self.lacking()
        for feature in features(vector.record) + [dtype]:
            if feature in lacking:
                return lacking[feature]
        return None

    def flushes_subnormals(self, dtype: str) -> bool:
        """Whether the framework's arithmetic in ``dtype`` flushes subnormal results or inputs to zero (measured)."""
        return False

    def flush_to_zero(self, dtype: str) -> bool:
        """``flushes_subnormals``, probed once per dtype: it does not change within a run."""
        cache = self.__dict__.setdefault("_flush_to_zero", {})
        if dtype not in cache:
            cache[dtype] = self.flushes_subnormals(dtype)
        return cache[dtype]

    def environment(self) -> dict[str, Any]:
        """What affects numerics: flush-to-zero per dtype (more where the framework says more)."""
        return {"flush_to_zero": {d: self.flush_to_zero(d) for d in ("float16", "bfloat16", "float32", "float64")}}

    def start(self, spec: Any) -> Session:  # pragma: no cover - abstract
        raise NotImplementedError

    def v2_api(self) -> Any:
        """Helpers for the optimizer_v2 API checks (only when ``claims_v2_api``)."""
        raise Unsupported(f"the {self.name} adapter's candidate does not claim the optimizer_v2 API")


def choose(spec: str) -> str:
    """The adapter for a ``module:attr`` candidate string, chosen by the module's top-level package."""
    module = spec.partition(":")[0]
    top = module.split(".")[0]
    if top == "tf_keras" or (top == "tensorflow" and "legacy" in module):
        return "tf_keras"
    if top in ("keras", "tensorflow"):
        return "keras3"
    if top in ("torch", "optax"):
        return top
    return "numpy"


def load(name: str) -> type[Adapter]:
    """Import the adapter class ``name`` (one of ``ADAPTERS``)."""
    module, _, attr = ADAPTERS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def value_at(obj: Any, step: int) -> float:
    """The value a hyperparameter object has at 0-based step ``step`` (for frameworks that take numbers)."""
    if callable(obj) and hasattr(obj, "steps_seen"):
        return float(obj(step))
    return float(obj() if callable(obj) else obj)


def per_step_numbers(hyper: dict[str, Any], step: int, defaults: dict[str, float]) -> dict[str, float]:
    """lr, beta_1, beta_2, epsilon as numbers at ``step`` (0-based), with the legacy decay applied (ADAM-HYPER-4)."""
    out = {k: value_at(hyper[k], step) if k in hyper else defaults[k] for k in ("learning_rate", "beta_1", "beta_2", "epsilon")}
    decay = float(hyper.get("decay", 0.0))
    if decay > 0:
        out["learning_rate"] = out["learning_rate"] / (1.0 + decay * step)
    return out


def algorithm1_epsilon(epsilon: float, beta_2: float, t: int) -> float:
    """The Algorithm-1 epsilon equal to an epsilon hat at step t: ``eps / sqrt(1 - beta_2**t)`` (ADAM-UPDATE-4)."""
    return epsilon / math.sqrt(1.0 - beta_2**t)


def subnormal(dtype: str) -> float:
    """The smallest positive subnormal of ``dtype``, for flush-to-zero probes."""
    from conformance.tolerance import FORMATS

    fmt = FORMATS[dtype]
    return 2.0 ** (fmt.emin - fmt.p + 1)


def densify(grad: Any, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """An IndexedSlices as a dense array, duplicates summed (ADAM-SPARSE-1); arrays pass through."""
    return dense_gradient(grad, shape).astype(dtype)
