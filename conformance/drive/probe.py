"""What a candidate implements, measured once per session on tiny inputs before any vector runs.

A part the candidate answers with ``NotImplementedError`` (or that its adapter
reports ``Unsupported``) is absent: every item that needs it is unsupported,
with the reason, and never counted as a pass or a failure.  Anything else a
probe raises is left for the items to report, where it is a failure.  Parts
the user declares absent (``--without``) are not even tried.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from conformance.adapters.base import Adapter
from conformance.judge.compare import as_state
from conformance.dtypes import DTYPES, DYADIC
from conformance.errors import NOT_IMPLEMENTED, not_implemented
from conformance.features import Feature
from conformance.inputs import Clock, RunSpec, StepCallable, StepSchedule
from reference.adam import IndexedSlices

HYPER = DYADIC
DECLARED = "declared absent with --without"


@dataclass
class Capabilities:
    """The probe's findings: absent features with their reasons, and what the candidate does not let be read."""

    absent: dict[Feature, str] = field(default_factory=dict)
    not_exposed: list[str] = field(default_factory=list)  # of "iterations", "m", "v"

    def as_dict(self) -> dict:
        return {"absent": {f.value: why for f, why in self.absent.items()}, "not_exposed": list(self.not_exposed)}


def _spec(dtype: str, amsgrad: bool, hyper: dict[str, Any] | None = None) -> RunSpec:
    return RunSpec.for_values(dtype, {"a": np.array([[1.0, -0.5], [0.25, 2.0]])}, hyper or HYPER, amsgrad)


DENSE = {"a": np.array([[0.5, -0.25], [1.0, 0.125]])}
SPARSE = {"a": IndexedSlices(np.array([[0.5, -0.25]]), np.array([1]), (2, 2))}


def probe(adapter: Adapter, without: list[Feature]) -> Capabilities:
    """Measure what ``adapter``'s candidate does not implement; the result is also set on ``adapter.absent``."""
    caps = Capabilities({f: f"{DECLARED}: {f.value}" for f in without})
    adapter.absent = caps.absent
    amsgrad = Feature.PLAIN_ADAM in adapter.missing()  # optax.amsgrad: every probe runs with the maximum

    def attempt(feature: Feature, run: Callable[[], Any]) -> Any:
        if feature in adapter.missing():
            return None
        try:
            return run()
        except NOT_IMPLEMENTED as exc:
            caps.absent[feature] = not_implemented(exc)
        except Exception:  # noqa: BLE001 - a real failure: the items that need this report it
            pass
        return None

    def one_step(spec: RunSpec, grads: dict = DENSE) -> Any:
        session = adapter.start(spec)
        session.apply(grads, 0)
        return session, session.read()

    for dtype in DTYPES:
        attempt(Feature(dtype), lambda: one_step(_spec(dtype, amsgrad)))
    dtype = next((d for d in ("float32", "float64", "float16", "bfloat16") if Feature(d) not in adapter.missing()), None)
    if dtype is None:
        return caps
    attempt(Feature.AMSGRAD, lambda: one_step(_spec(dtype, True)))
    attempt(Feature.SPARSE, lambda: one_step(_spec(dtype, amsgrad), SPARSE))
    for name in HYPER:
        attempt(Feature.callable(name), lambda: one_step(_spec(dtype, amsgrad, {
            **HYPER, name: StepCallable(name, [HYPER[name]], Clock())})))
    attempt(Feature.SCHEDULE, lambda: one_step(_spec(dtype, amsgrad, {**HYPER, "learning_rate": StepSchedule([2.0**-7])})))
    try:
        session, read = one_step(_spec(dtype, amsgrad))
    except Exception:  # noqa: BLE001 - the items report it
        return caps
    caps.not_exposed = [k for k in ("iterations", "m", "v")
                        if (read["iterations"] if k == "iterations" else read["a"].get(k)) is None]
    attempt(Feature.STATE_LOADING, lambda: _load(session, read))
    return caps


def _load(session: Any, read: dict) -> None:
    """Give the session the state it just showed, which is what single-step mode does before every step."""
    state = as_state(read)
    if state["iterations"] is None:
        state["iterations"] = 1
    session.load(state)
