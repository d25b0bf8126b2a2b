"""What every adapter is handed for one vector: the ``RunSpec``, the harness's clock, and the hyperparameter
objects that follow it (``StepCallable``, ``StepSchedule``).

The harness owns the step counter.  A callable hyperparameter returns the value of the current step however often
it is called, and records the steps at which it was called, so that a candidate that freezes or ignores it fails
(ADAM-HYPER-1) instead of passing vacuously.  Adapters test for these types with ``isinstance``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Clock:
    """The harness's step counter: the 0-based index of the step being applied."""

    step: int = 0


class StepCallable:
    """A zero-argument hyperparameter callable whose value follows the harness's clock."""

    def __init__(self, name: str, values: list[float], clock: Clock) -> None:
        self.name, self.values, self.clock = name, values, clock
        self.called_at: set[int] = set()

    def __call__(self) -> float:
        self.called_at.add(self.clock.step)
        return self.values[min(self.clock.step, len(self.values) - 1)]

    def __repr__(self) -> str:
        return f"<harness callable {self.name}>"


class StepSchedule:
    """A learning-rate schedule: ``schedule(step)`` returns the value stored for that 0-based step."""

    def __init__(self, values: list[float]) -> None:
        self.values = values
        self.steps_seen: list[int] = []

    def __call__(self, step: Any) -> float:
        k = int(step)
        self.steps_seen.append(k)
        if not 0 <= k < len(self.values):
            raise ValueError(f"learning-rate schedule called with step {k}; the vector defines steps 0..{len(self.values) - 1}")
        return self.values[k]


@dataclass
class RunSpec:
    """What an adapter needs to build the candidate and its variables for one vector and dtype."""

    hyper: dict[str, Any]  # learning_rate, beta_1, beta_2, epsilon: float | StepCallable | StepSchedule; decay: float
    amsgrad: bool
    defaults: bool  # construct with no hyperparameter argument
    dtype: str  # the run's: a dtype, or "mixed" (every variable has its own, ``dtypes``)
    variables: dict[str, np.ndarray]  # float64 initial values
    clock: Clock
    round_trip: bool = False  # build the optimizer, then use from_config(get_config()) of it (ADAM-API-CONFIG-2)
    non_contiguous: bool = False  # variables and gradients as strided / transposed views (Feature.NON_CONTIGUOUS)
    dtypes: dict[str, str] = field(default_factory=dict)  # a variable's own dtype (ADAM-DTYPE-2)
    clipping: dict[str, float] = field(default_factory=dict)  # the constructor's clipping argument (ADAM-CLIP-APPLY-1)
    steps: int = 0  # the vector's steps (0 when not from a vector): where --checkpoint saves

    @classmethod
    def for_vector(cls, vector: Any, dtype: str, *, variables: dict[str, np.ndarray] | None = None,
                   round_trip: bool = False) -> "RunSpec":
        """The spec of one vector (``conformance.load.vector.Vector``) in ``dtype``: the one way every driver builds
        it.  ``variables``: the initial values when the caller holds them already (by default, made here).  Each
        call makes a new clock and new hyperparameter objects on it."""
        clock = Clock()
        return cls(hyper=hyper_inputs(vector.hyperparameter_specs, clock), amsgrad=vector.amsgrad,
                   defaults=vector.constructed_with_defaults, dtype=dtype, variables=vector.initial() if variables is None else variables,
                   clock=clock,
                   round_trip=round_trip, non_contiguous=vector.non_contiguous, dtypes=vector.variable_dtypes(dtype),
                   clipping={k: float(x) for k, x in vector.record.get("clipping", {}).items()},
                   steps=len(vector.steps))

    @classmethod
    def for_values(cls, dtype: str, variables: dict[str, np.ndarray], hyper: dict[str, Any],
                   amsgrad: bool = False) -> "RunSpec":
        """A spec without a vector (the capability probe, benchmarks): these variables and hyperparameter objects,
        one dtype, a new clock."""
        return cls(hyper=dict(hyper), amsgrad=amsgrad, defaults=False, dtype=dtype, variables=variables, clock=Clock())

    def dtype_of(self, name: str) -> str:
        """The dtype of variable ``name``: the variable's own in a mixed run, the run's otherwise."""
        return self.dtypes.get(name, self.dtype)


def hyper_inputs(specs: dict[str, Any], clock: Clock) -> dict[str, Any]:
    """The hyperparameter objects handed to the candidate, from a vector's ``hyperparameters`` field: constants,
    harness callables (``{"callable": [values]}``), a schedule (``{"schedule": [values]}``)."""
    out: dict[str, Any] = {}
    for name, spec in specs.items():
        if isinstance(spec, dict) and "callable" in spec:
            out[name] = StepCallable(name, [float(x) for x in spec["callable"]], clock)
        elif isinstance(spec, dict):
            out[name] = StepSchedule([float(x) for x in spec["schedule"]])
        else:
            out[name] = float(spec)
    return out
