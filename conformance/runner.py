"""Drive one candidate through one vector: hyperparameter delivery, steps, observations.

The harness owns the step counter.  A callable hyperparameter returns the value
of the current step however often it is called, and records the steps at
which it was called, so a candidate that freezes or ignores it fails
(ADAM-HYPER-1) instead of passing vacuously.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from conformance.adapters import Adapter, Unsupported
from conformance.loader import Vector
from vectors.generate import gradient_value


class CandidateError(Exception):
    """The candidate raised while being built (step 0) or at a step (1-based)."""

    def __init__(self, step: int, error: BaseException) -> None:
        self.step, self.error = step, error
        where = "while being built" if step == 0 else f"at step {step}"
        text = (str(error).strip().splitlines() or [""])[0][:200]
        super().__init__(f"the candidate raised {type(error).__name__} {where}: {text}")


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
    dtype: str
    variables: dict[str, np.ndarray]  # float64 initial values
    clock: Clock
    iterations_before: int = 0


@dataclass
class Run:
    """Observations of one run: per step {"iterations": int, var: {tensor: array or None}}."""

    observed: list[dict] = field(default_factory=list)
    liveness: list[str] = field(default_factory=list)  # callables that were not called at some step
    candidate_seconds: float = 0.0  # time spent inside the candidate (building it, stepping, reading back)


def hyper_inputs(vector: Vector, clock: Clock) -> dict[str, Any]:
    """The hyperparameter objects handed to the candidate (constants, harness callables, a schedule)."""
    out: dict[str, Any] = {}
    for name, spec in vector.record["hyperparameters"].items():
        if isinstance(spec, dict) and "callable" in spec:
            out[name] = StepCallable(name, [float(x) for x in spec["callable"]], clock)
        elif isinstance(spec, dict):
            out[name] = StepSchedule([float(x) for x in spec["schedule"]])
        else:
            out[name] = float(spec)
    return out


def run_vector(adapter: Adapter, vector: Vector, dtype: str) -> Run:
    """Run every step of ``vector`` on the candidate in ``dtype``; Unsupported propagates."""
    reason = adapter.unsupported(vector, dtype)
    if reason:
        raise Unsupported(reason)
    clock = Clock()
    record = vector.record
    spec = RunSpec(
        hyper=hyper_inputs(vector, clock),
        amsgrad=record["amsgrad"],
        defaults=record["construct"] == "defaults",
        dtype=dtype,
        variables={n: np.asarray(v["initial"], dtype=np.float64) for n, v in record["variables"].items()},
        clock=clock,
    )
    run = Run()
    start = time.perf_counter()
    try:
        session = adapter.start(spec)
    except Unsupported:
        raise
    except Exception as exc:  # noqa: BLE001
        raise CandidateError(0, exc) from exc
    run.candidate_seconds += time.perf_counter() - start
    for s, step in enumerate(record["steps"]):
        clock.step = s
        grads = {name: gradient_value(g) for name, g in step["gradients"].items()}
        start = time.perf_counter()
        try:
            session.apply(grads, s)
            run.observed.append(session.read())
        except Unsupported:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever the candidate raises is reported, with its step
            raise CandidateError(s + 1, exc) from exc
        run.candidate_seconds += time.perf_counter() - start
    for name, obj in spec.hyper.items():
        if isinstance(obj, StepCallable):
            missing = sorted(set(range(len(record["steps"]))) - obj.called_at)
            if missing:
                run.liveness.append(f"callable {name} was not called at step(s) {[m + 1 for m in missing]} "
                                    "(frozen or ignored: ADAM-HYPER-1)")
        if isinstance(obj, StepSchedule) and sorted(set(obj.steps_seen)) != list(range(len(record["steps"]))):
            run.liveness.append(f"the learning-rate schedule was called with steps {sorted(set(obj.steps_seen))}, "
                                f"expected 0..{len(record['steps']) - 1} (ADAM-HYPER-3)")
    return run
