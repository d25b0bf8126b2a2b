"""Adapter for NumPy ports that keep the NumPy-port protocol (``reference.Adam`` is one).

Only the constructor and ``apply_gradients`` are required.  What a port does
not have, or answers with ``NotImplementedError``, is not implemented: a
missing ``iterations`` or ``get_slot`` leaves that tensor unobserved (the
variable decides), a missing ``set_weights`` makes single-step mode
unsupported, a missing ``get_config`` / ``from_config`` the config round trip.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import reference
from conformance.errors import Unsupported
from conformance.adapters.base import Adapter, Batches, strided_view, weights_in_spec_order
from conformance.dtypes import NUMPY_DTYPES
from conformance.inputs import StepSchedule

#: What ``get_slot`` may raise for a slot it does not have (yet, or at all): the slot is then not observed.
NOT_A_SLOT = (KeyError, AttributeError, ValueError, NotImplementedError)


class _Schedule(reference.LearningRateSchedule):
    """The harness's schedule as the kit's LearningRateSchedule type, so a port can recognise it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __call__(self, step: int) -> float:
        return self.inner(step)


def constructor_kwargs(spec: Any, schedule_type: Any = _Schedule) -> dict[str, Any]:
    """Keyword arguments for ``Class(...)``: hyperparameters as given (callables pass through)."""
    if spec.defaults:
        return {}
    kwargs: dict[str, Any] = {"amsgrad": spec.amsgrad}
    for name, obj in spec.hyper.items():
        kwargs[name] = schedule_type(obj) if isinstance(obj, StepSchedule) else obj
    return kwargs


def round_trip(opt: Any) -> Any:
    """``type(opt).from_config(opt.get_config())`` (ADAM-API-CONFIG-2); NotImplementedError if the port has neither."""
    if not (hasattr(opt, "get_config") and hasattr(type(opt), "from_config")):
        raise NotImplementedError("the candidate has no get_config / from_config")
    return type(opt).from_config(opt.get_config())


class NumpyPortAdapter(Adapter):
    """Variables are NumPy arrays updated in place; sparse gradients are ``reference.IndexedSlices``."""

    name = "numpy"
    framework = "numpy"
    claims_v2_api = True
    strided = True

    def versions(self) -> dict[str, str]:
        return {"numpy": np.__version__}

    def start(self, spec: Any) -> "NumpySession":
        return NumpySession(self.candidate, spec)

    def v2_api(self) -> Any:
        return NumpyApi(self.candidate)


class NumpySession:
    def __init__(self, cls: Any, spec: Any) -> None:
        self.amsgrad = spec.amsgrad
        self.opt = cls(**constructor_kwargs(spec))
        if spec.round_trip:
            self.opt = round_trip(self.opt)
        self.strided = spec.non_contiguous
        self.vars = {n: self._array(v, NUMPY_DTYPES[spec.dtype_of(n)]) for n, v in spec.variables.items()}
        self.batches = Batches()

    def _array(self, values: Any, dtype: np.dtype) -> np.ndarray:
        """A copy in ``dtype``; a strided or transposed view for a non-contiguous vector."""
        values = np.asarray(values)
        if not self.strided:
            return values.astype(dtype)
        out = strided_view(lambda shape: np.empty(shape, dtype=dtype), values.shape)
        out[...] = values
        return out

    def _grad(self, g: Any, dtype: np.dtype) -> Any:
        if g is None or not hasattr(g, "indices"):
            return None if g is None else self._array(g, dtype)
        return reference.IndexedSlices(np.asarray(g.values).astype(dtype), np.asarray(g.indices), g.dense_shape)

    def apply(self, grads: dict[str, Any], step: int) -> None:
        self.opt.apply_gradients([(self._grad(g, self.vars[n].dtype), self.vars[n]) for n, g in grads.items()])
        self.batches.note(grads)

    def _slot(self, var: np.ndarray, slot: str) -> np.ndarray | None:
        try:
            return np.array(self.opt.get_slot(var, slot))
        except NOT_A_SLOT:
            return None

    def read(self) -> dict:
        iterations = getattr(self.opt, "iterations", None)
        out: dict[str, Any] = {"iterations": None if iterations is None else int(iterations)}
        for n, var in self.vars.items():
            out[n] = {"variable": np.array(var), **{slot: self._slot(var, slot) for slot in ("m", "v", "vhat")}}
        return out

    def load(self, state: dict) -> None:
        """Through the protocol's own ``set_weights`` (ADAM-API-WEIGHTS-2), then the variables in place."""
        if not hasattr(self.opt, "set_weights"):
            raise NotImplementedError("the candidate has no set_weights")
        self.opt.set_weights(weights_in_spec_order(state, self.batches, self.amsgrad,
                                                   lambda n, x: x.astype(self.vars[n].dtype)))
        for n, var in self.vars.items():
            var[...] = state[n]["variable"].astype(var.dtype)


class NumpyApi:
    """What the optimizer_v2 API checks need, for NumPy ports."""

    def __init__(self, cls: Any) -> None:
        self.cls = cls

    def make(self, **kwargs: Any) -> Any:
        return self.cls(**kwargs)

    def variable(self, values: Any, dtype: str = "float32") -> np.ndarray:
        return np.array(values, dtype=NUMPY_DTYPES[dtype])

    def gradient(self, values: Any, dtype: str = "float32") -> np.ndarray:
        return np.array(values, dtype=NUMPY_DTYPES[dtype])

    def sparse(self, values: Any, indices: Any, shape: Any, dtype: str = "float32") -> Any:
        return reference.IndexedSlices(np.array(values, dtype=NUMPY_DTYPES[dtype]), np.array(indices), tuple(shape))

    def numpy(self, x: Any) -> np.ndarray:
        return np.array(x, dtype=np.float64) if not isinstance(x, (int, np.integer)) else np.array(int(x))

    def dtype(self, name: str) -> Any:
        """The NumPy dtype for ``name``."""
        return NUMPY_DTYPES[name]

    # minimize, get_gradients and get_updates differentiate a loss; the protocol passes gradients instead, and a
    # port that computes its own would only repeat apply_gradients, which the vectors already check.
    NO_AUTODIFF = "the NumPy-port protocol has no automatic differentiation (no minimize, get_gradients, get_updates)"

    def linear_loss(self, terms: list, reduce: bool = True) -> Any:
        raise Unsupported(self.NO_AUTODIFF)

    def minimize(self, opt: Any, loss: Any, var_list: Any, grad_loss: Any = None) -> Any:
        raise Unsupported(self.NO_AUTODIFF)

    def in_graph(self, kwargs: dict, values: list, coefficients: list, call: str) -> dict[str, Any]:
        raise Unsupported(self.NO_AUTODIFF)

    def tensor(self, value: float) -> Any:
        raise Unsupported("the NumPy-port protocol has no tensors: a hyperparameter is a float or a callable")

    scalar_variable = tensor

    def assign(self, variable: Any, value: Any) -> None:
        raise Unsupported("the NumPy-port protocol has no tensors: a hyperparameter is a float or a callable")

    def set_iterations(self, opt: Any, n: int) -> None:
        """ADAM-API-ITER-2: ``opt.iterations = n``; a port whose counter is read-only does not implement it."""
        opt.iterations  # noqa: B018 - a port without a counter: AttributeError, reported as "it has no iterations"
        try:
            opt.iterations = n
        except AttributeError as exc:
            raise NotImplementedError(f"iterations cannot be assigned ({exc})") from exc

    def custom_schedule(self) -> tuple[type, Any]:
        raise Unsupported("the NumPy-port protocol does not serialize schedules (get_config keeps the object)")
