"""Adapter for NumPy ports that keep the NumPy-port protocol (``reference.Adam`` is one).

Only the constructor and ``apply_gradients`` are required.  What a port does
not have, or answers with ``NotImplementedError``, is not implemented: a
missing ``iterations`` or ``get_slot`` leaves that tensor unobserved (the
variable decides), a missing ``set_weights`` makes single-step mode
unsupported, a missing ``get_config`` / ``from_config`` the config round trip.

The report names what the port wraps: the versions it declares in ``adam_conformance_versions`` and those
of the installed packages its module imports (``imported_versions``).
"""

from __future__ import annotations

import importlib.metadata
import sys
import types
from typing import Any

import numpy as np

import reference
from conformance.errors import NOT_IMPLEMENTED, Unsupported, first_line
from conformance.adapters.base import (STATE_FORMAT, Adapter, Batches, restore_state, save_state, strided_view,
                                       weights_in_spec_order)
from conformance.dtypes import NUMPY_DTYPES
from conformance.inputs import StepSchedule

#: What ``get_slot`` may raise for a slot it does not have (yet, or at all): the slot is then not observed.
NOT_A_SLOT = (KeyError, AttributeError, ValueError, NotImplementedError)

#: The class attribute in which a port declares what it wraps, ``{"mylib": "1.2.0"}``: shown in the report's
#: header and JSON ``versions``, ahead of what the kit finds among the packages the port imports.
DECLARED_VERSIONS = "adam_conformance_versions"

#: The class attribute in which a port declares that its apply_gradients clips (ADAM-CLIP-APPLY-1): it is then built
#: with a vector's clipnorm, global_clipnorm or clipvalue.
CLIPS_DECLARED = "clips_in_apply_gradients"

#: Distributions never reported as wrapped: the kit itself (``reference``, ``conformance``, ``vectors``).
KIT_DISTRIBUTIONS = {"adam-conformance", "adam_conformance"}


def imported_versions(candidate: Any) -> dict[str, str]:
    """The installed distributions the candidate's module imports, with their versions.

    Looks at the module of the candidate and of its base classes, and at what those modules hold at top level
    (imported modules, and classes or functions imported from a package): each top-level package that an
    installed distribution provides is named by that distribution.  The standard library, the kit and modules
    that no distribution provides (the port's own files) are left out.  Without this the report of a NumPy-protocol
    candidate names NumPy only, and runs against two versions of the wrapped library look the same.
    """
    names = {getattr(c, "__module__", None) for c in (candidate, *getattr(candidate, "__mro__", ()))}
    modules = [sys.modules[n] for n in names if isinstance(n, str) and n in sys.modules]
    found = {m.__name__ for m in modules}
    for module in modules:
        for key, value in list(vars(module).items()):
            if key.startswith("@") or (key.startswith("__") and key.endswith("__")):
                continue  # the module's own machinery (its loader; pytest's assertion rewriting), not an import
            name = value.__name__ if isinstance(value, types.ModuleType) else getattr(value, "__module__", None)
            if isinstance(name, str):
                found.add(name)
    tops = {n.partition(".")[0] for n in found} - set(sys.stdlib_module_names) - set(sys.builtin_module_names)
    provided = importlib.metadata.packages_distributions()
    out: dict[str, str] = {}
    for top in sorted(tops):
        for dist in provided.get(top, []):
            if dist not in KIT_DISTRIBUTIONS and dist not in out:
                try:
                    out[dist] = importlib.metadata.version(dist)
                except importlib.metadata.PackageNotFoundError:
                    pass
    return out


def declared_versions(candidate: Any) -> dict[str, str]:
    """``candidate.adam_conformance_versions`` as strings; ValueError naming the attribute if it is not a mapping."""
    declared = getattr(candidate, DECLARED_VERSIONS, None)
    if declared is None:
        return {}
    if not isinstance(declared, dict):
        raise ValueError(f"{DECLARED_VERSIONS} must be a dict of package name to version, not {type(declared).__name__}")
    return {str(k): str(v) for k, v in declared.items()}


class _Schedule(reference.LearningRateSchedule):
    """The harness's schedule as the kit's LearningRateSchedule type, so a port can recognise it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __call__(self, step: int) -> float:
        return self.inner(step)


def constructor_kwargs(spec: Any, schedule_type: Any = _Schedule) -> dict[str, Any]:
    """Keyword arguments for ``Class(...)``: hyperparameters as given (callables pass through), and the vector's
    clipping argument (ADAM-CLIP-APPLY-1), which only a candidate that clips in apply_gradients is given."""
    clipping = dict(getattr(spec, "clipping", {}))
    if spec.defaults:
        return clipping
    kwargs: dict[str, Any] = {"amsgrad": spec.amsgrad}
    for name, obj in spec.hyper.items():
        kwargs[name] = schedule_type(obj) if isinstance(obj, StepSchedule) else obj
    return {**kwargs, **clipping}


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
        """NumPy, the packages the port's module imports (``imported_versions``), then what the port declares."""
        if not hasattr(self, "_versions"):  # looked up once: the metadata scan is not free, and nothing changes
            self._versions = {"numpy": np.__version__, **imported_versions(self.candidate),
                              **declared_versions(self.candidate)}
        return self._versions

    checkpoint_formats = STATE_FORMAT

    @property
    def clips(self) -> bool:  # type: ignore[override]
        """A NumPy port clips in apply_gradients only if it says so (``clips_in_apply_gradients = True``)."""
        return bool(getattr(self.candidate, CLIPS_DECLARED, False))

    no_clipping = ("the port does not declare clipping in apply_gradients (reference.Adam follows TF 2.0, which clips "
                   "only in minimize, ADAM-TF2-CLIP-1; a port that clips there sets clips_in_apply_gradients = True)")

    def start(self, spec: Any) -> "NumpySession":
        return NumpySession(self.candidate, spec)

    def checkpoint_save(self, session: Any, fmt: str, directory: str) -> None:
        save_state(session, directory)

    def checkpoint_restore(self, spec: Any, fmt: str, directory: str) -> Any:
        return restore_state(self.start(spec), directory, spec.clock.step, prime=True)

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

    def _slot(self, name: str, var: np.ndarray, slot: str) -> np.ndarray | None:
        try:
            return np.array(self.opt.get_slot(var, slot))
        except NOT_A_SLOT:
            return None
        except NOT_IMPLEMENTED:  # Unsupported from an adapter-made slot: unsupported, as ever
            raise
        except Exception as exc:
            # Read after apply_gradients, so without this it would read as apply_gradients failing at that step.
            # The fixed words first: the candidate's own message may be long, and the line is cut at 200 characters.
            unknown = (f" {name!r} has no slots yet, and get_slot raises KeyError then (the NumPy-port protocol):"
                       if name not in self.batches.seen else "")
            exc.args = (f"get_slot(variable {name!r}, {slot!r}) raised it, not apply_gradients:{unknown} {first_line(exc)}",)
            raise

    def read(self) -> dict:
        iterations = getattr(self.opt, "iterations", None)
        out: dict[str, Any] = {"iterations": None if iterations is None else int(iterations)}
        for n, var in self.vars.items():
            out[n] = {"variable": np.array(var), **{slot: self._slot(n, var, slot) for slot in ("m", "v", "vhat")}}
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
