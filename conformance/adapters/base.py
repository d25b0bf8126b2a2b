"""What every adapter shares: the base class, the session protocol, and the small translations several need."""

from __future__ import annotations

import os
import pickle
from typing import Any, Callable, Protocol

import numpy as np

from conformance.errors import Unsupported
from conformance.dtypes import DTYPES, FORMATS, MIXED
from conformance.features import HYPERPARAMETERS, Feature
from conformance.inputs import RunSpec, StepSchedule
from reference.adam import call_hyperparameters, dense_gradient


class Session(Protocol):
    """One candidate instance with its variables, for one vector and dtype (what ``Adapter.start`` returns).

    Any method may raise ``NotImplementedError`` or ``Unsupported`` for a part the candidate lacks: that part is
    unsupported, not failed (``load`` missing makes single-step mode unsupported).  Anything else it raises is
    reported as the candidate's error at that step."""

    def apply(self, grads: dict[str, Any], step: int) -> None:
        """One ``apply_gradients`` call at 0-based ``step``; ``grads`` maps each variable's name to a float64 array,
        an ``IndexedSlices`` or None (no gradient); a variable not in ``grads`` is not in the call."""

    def read(self) -> dict:
        """``{"iterations": int or None, name: {"variable": array, "m": array|None, ...}}``, arrays in the candidate's
        dtype; None for what the candidate does not expose."""

    def load(self, state: dict) -> None:
        """Set iterations, variables and existing slots to ``state`` (same layout as ``read``; float64 arrays)."""


class Adapter:
    """Base class: the candidate, the options, and what every adapter shares."""

    name = "base"
    framework = ""
    claims_v2_api = False  # the optimizer_v2 API of the page (get_slot, get_weights, ...)
    observes_liveness = True  # the harness's callables and schedule are called by the candidate itself
    #: Execution modes (``--execution``): name -> how the candidate's step runs, in words; the first is the default.
    executions = {"eager": "the candidate's step called directly"}
    #: Checkpoint formats (``--checkpoint=FORMAT``): name -> how the state is saved and restored, in words, the
    #: first the default.  Empty: the adapter cannot resume a run from a checkpoint.
    checkpoint_formats: dict[str, str] = {}
    #: The execution modes that run the candidate on several replicas or ranks: ``--world-size`` and ``--split``
    #: (``conformance.adapters.distributed``) apply to them alone.
    distributed_executions: tuple[str, ...] = ()
    #: Those whose ranks are processes (``conformance.adapters.ranks``), which ``--rank-hosts`` and
    #: ``--rank-launcher`` can place elsewhere (``placement``, a ``ranks.Placement``; None: children of the kit).
    rank_executions: tuple[str, ...] = ()
    placement: Any = None

    def __init__(self, candidate: Any, *, raw: bool = False, device: str = "cpu", execution: str | None = None,
                 world_size: int = 2, split: str = "even") -> None:
        self.candidate, self.raw, self.device = candidate, raw, device
        self.world_size, self.split = world_size, split  # replicas or ranks, and how a step's gradient is divided
        self.execution = execution or next(iter(self.executions))
        if self.execution not in self.executions:
            raise ValueError(f"the {self.name} adapter has no execution mode {self.execution!r} "
                             f"(it has: {', '.join(self.executions)})")
        #: Features found absent when the candidate was probed, or declared absent (--without), with the reason.
        self.absent: dict[Feature, str] = {}

    @property
    def distributed(self) -> bool:
        """Whether the execution mode runs on several replicas or ranks (then world size and split are recorded)."""
        return self.execution in self.distributed_executions

    @property
    def translations(self) -> list[str]:
        """What the adapter translates, in words, for the report header."""
        return []

    def profile(self) -> tuple[str, ...]:
        """The known deviations (``reference.variants``) this adapter's candidates are judged with: a framework's
        own convention, declared instead of translated (none with ``raw``)."""
        return ()

    def versions(self) -> dict[str, str]:
        """Framework versions for the report."""
        return {}

    def device_used(self) -> str:
        """The device the candidate actually runs on (recorded with every result)."""
        return "cpu"

    def lacking(self) -> dict[Feature, str]:
        """Features the framework cannot express, with the reason (known without running the candidate)."""
        return {}

    #: Whether the adapter can hand the candidate strided and transposed views (Feature.NON_CONTIGUOUS).
    strided = False
    #: Whether the candidate clips in apply_gradients, built with a vector's clipping argument (Feature.CLIPPING,
    #: ADAM-CLIP-APPLY-1), and why not where it does not.
    clips = False
    no_clipping = "the candidate has no clipping argument that apply_gradients applies"

    def missing(self) -> dict[Feature, str]:
        """Everything this candidate is not run with: what its framework lacks and what was found or declared absent."""
        out = {} if self.strided else {
            Feature.NON_CONTIGUOUS: f"the {self.name} adapter's tensors are always contiguous: a strided or transposed "
                                    "view cannot be expressed"}
        if not self.clips:
            out[Feature.CLIPPING] = self.no_clipping
        return {**out, **self.lacking(), **self.absent}

    def unsupported(self, vector: Any, dtype: str) -> str | None:
        """Why this vector cannot be run for this candidate, or None."""
        missing = self.missing()
        for feature in vector.features + ([] if dtype == MIXED else [Feature(dtype)]):
            if feature in missing:
                return missing[feature]
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
        return {"flush_to_zero": {d: self.flush_to_zero(d) for d in DTYPES}}

    def probe(self) -> Any:
        """Build one instance with the framework's usual call, so that a broken constructor fails early."""
        return self.candidate()

    def start(self, spec: RunSpec) -> Session:  # pragma: no cover - abstract
        """Build the candidate and its variables for one vector and dtype, and return the session that steps it.

        The contract: build the optimizer as ``spec`` says (``spec.defaults``: no hyperparameter argument; else
        ``spec.hyper``, whose values are floats, ``StepCallable``s to pass as zero-argument callables, or a
        ``StepSchedule`` to pass as a learning-rate schedule, translated to the framework's schedule type where it
        has one), ``spec.amsgrad``; create each variable of ``spec.variables`` (float64 initial values, never
        modified: copy them) in ``spec.dtype_of(name)``, as a strided view when ``spec.non_contiguous``; with
        ``spec.round_trip``, use ``from_config(get_config())`` of the optimizer built.  Raise
        ``conformance.errors.Unsupported`` (with the reason) for what the framework cannot express, and let any
        other exception of the candidate's through: the harness reports it as the candidate's, at step 0."""
        raise NotImplementedError

    def checkpoint_save(self, session: Session, fmt: str, directory: str) -> None:
        """Save ``session``'s candidate (optimizer and variables) under ``directory`` with format ``fmt`` (one of
        ``checkpoint_formats``), as the framework's guides save a training run."""
        raise Unsupported(f"the {self.name} adapter has no checkpoint format")

    def checkpoint_lacking(self, fmt: str) -> dict[Feature, str]:
        """Features a resume through ``fmt`` cannot carry (as ``lacking``), with the reason; none by default."""
        return {}

    def checkpoint_restore(self, spec: RunSpec, fmt: str, directory: str) -> Session:
        """In a fresh process: build the candidate from ``spec`` as ``start`` does, restore it from what
        ``checkpoint_save`` wrote under ``directory``, and return the session that steps on from there."""
        raise Unsupported(f"the {self.name} adapter has no checkpoint format")

    #: What ``twin`` is, in words ("one device", "the uninterrupted run"), and whether a difference from it fails the
    #: item (True) or is reported beside the verdict (False).
    twin_label = ""
    twin_binding = False

    def twin(self) -> "Adapter | None":
        """Another adapter whose run this candidate must reproduce bit for bit: the same candidate on one device (a
        distributed execution mode), or without the interruption (a resumed run); None (the default) for no twin.

        The runner builds the twin's session in trajectory mode from the same ``RunSpec``, steps it with the same
        gradients and compares the two ``read()`` states after every step (``judge/identical.py``); a session may also
        have ``replicas() -> list[dict]``, every replica's state, which must agree bit for bit."""
        return None

    def interrupt(self) -> None:
        """An item ran past ``--conformance-timeout``: free the candidate if the adapter can (a process can be killed)."""

    def v2_api(self) -> Any:
        """Helpers for the optimizer_v2 API checks (only when ``claims_v2_api``)."""
        raise Unsupported(f"the {self.name} adapter's candidate does not claim the optimizer_v2 API")

    def page_aliases(self) -> dict[str, Any]:
        """ADAM-API-ALIAS-1: each name the page lists for the class -> what it is in the installed TensorFlow."""
        raise Unsupported("the page's names are TensorFlow's; a candidate outside TensorFlow has none")


class Batches:
    """The variables of a run in the order their slots were created: one list per call that first updated some.

    ``get_weights`` lists slots in this order (ADAM-API-WEIGHTS-1), so loading a state through ``set_weights``
    needs it.
    """

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.seen: set[str] = set()

    def note(self, grads: dict[str, Any]) -> None:
        """Record the variables that a successful call updated for the first time."""
        new = [n for n, g in grads.items() if g is not None and n not in self.seen]
        if new:
            self.batches.append(new)
            self.seen |= set(new)


def weights_in_spec_order(state: dict, batches: Batches, amsgrad: bool,
                          cast: Callable[[str, np.ndarray], Any]) -> list[Any]:
    """ADAM-API-WEIGHTS-1: ``[iterations, m..., v..., vhat...]``, each batch of newly seen variables grouped by slot;
    ``cast(name, values)`` makes a slot of variable ``name`` what the candidate takes."""
    slots = ("m", "v", "vhat") if amsgrad else ("m", "v")
    return [np.int64(state["iterations"])] + [cast(n, state[n][slot]) for batch in batches.batches for slot in slots
                                              for n in batch]


#: The ``state`` checkpoint format of the NumPy ports and the pipe ports: the kit's own, through the port's API.
STATE_FORMAT = {"state": "the state as read (iterations, variables, slots) saved to a file; in the new process "
                         "loaded into a fresh candidate with load (set_weights for a NumPy port)"}


def save_state(session: Any, directory: str) -> None:
    """``STATE_FORMAT``'s save: what ``session.read()`` shows, and the order in which its slots were created."""
    batches = getattr(session, "batches", None)
    with open(os.path.join(directory, "state.pickle"), "wb") as f:
        pickle.dump({"state": session.read(), "batches": batches.batches if batches else []}, f)


def restore_state(session: Any, directory: str, step: int, prime: bool) -> Any:
    """``STATE_FORMAT``'s restore into a fresh ``session``.  ``prime``: first create the slots as they were first
    created, one zero-gradient call per batch of variables (a zero gradient leaves the variables where they are), as
    a positional ``set_weights`` needs the slots to exist; its counter and slots are then overwritten by the load."""
    with open(os.path.join(directory, "state.pickle"), "rb") as f:
        saved = pickle.load(f)
    state = saved["state"]
    if state["iterations"] is None:
        raise Unsupported("the candidate shows no iterations: a state without its step count cannot be resumed")
    if prime and not saved["batches"]:
        return session  # saved before its first step: nothing but the variables as built, which it has already
    if prime:
        for batch in saved["batches"]:
            session.apply({n: np.zeros(np.shape(state[n]["variable"])) for n in batch}, step)
    session.load({"iterations": int(state["iterations"]),
                  **{n: {f: None if x is None else np.asarray(x).astype(np.float64) for f, x in fields.items()}
                     for n, fields in state.items() if n != "iterations"}})
    return session


def value_at(obj: Any, step: int) -> float:
    """The value a hyperparameter object has at 0-based step ``step`` (for frameworks that take numbers)."""
    if isinstance(obj, StepSchedule):
        return float(obj(step))
    return float(obj() if callable(obj) else obj)


def per_step_numbers(hyper: dict[str, Any], step: int, defaults: dict[str, float]) -> dict[str, float]:
    """lr, beta_1, beta_2, epsilon as numbers at ``step`` (0-based), with the legacy decay applied (ADAM-HYPER-4)."""
    values = {k: value_at(hyper[k], step) if k in hyper else defaults[k]
              for k in HYPERPARAMETERS}
    return dict(vars(call_hyperparameters(**values, decay=float(hyper.get("decay", 0.0)), iterations=step)))


def subnormal(dtype: str) -> float:
    """The smallest positive subnormal of ``dtype``, for flush-to-zero probes."""
    return FORMATS[dtype].smallest_subnormal


def strided_view(empty: Callable[[tuple[int, ...]], Any], shape: tuple[int, ...]) -> Any:
    """A non-contiguous view of ``shape`` over a new buffer from ``empty`` (NumPy or torch): transposed for a matrix,
    every other element of a twice-as-long last axis otherwise (Feature.NON_CONTIGUOUS, the ``kernels`` family)."""
    if len(shape) == 2:
        return empty(shape[::-1]).T
    return empty((*shape[:-1], 2 * shape[-1]))[..., ::2]


def densify(grad: Any, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """An IndexedSlices as a dense array, duplicates summed (ADAM-SPARSE-1); arrays pass through."""
    return dense_gradient(grad, shape).astype(dtype)
