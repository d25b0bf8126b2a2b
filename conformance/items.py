"""pytest collection of vector files: one item per vector x dtype, and one failing item per bad vector."""

from __future__ import annotations

import threading
from typing import Any, Callable

import pytest

from conformance.adapters import Unsupported
from conformance.compare import failure_text, json_number
from conformance.diagnose import chosen, diagnose
from conformance.isolation import CandidateCrash
from conformance.loader import Vector, VectorError
from conformance.record import Result
from conformance import stream
from conformance.runner import MODES, Outcome, run
from conformance.state import STATE


class ConformanceFailure(Exception):
    """A vector the candidate does not conform to; the message is the whole report."""


def call_with_timeout(fn: Callable[[], Any], seconds: float) -> Any:
    """Run ``fn`` in a worker thread; TimeoutError if it has not returned after ``seconds``.

    A hung candidate cannot be killed from Python: its thread is left behind
    (daemon) and the run goes on with the next item.
    """
    if seconds <= 0:
        return fn()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=target, daemon=True, name="adam-conformance-candidate")
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise TimeoutError(f"the candidate did not finish within {seconds:g} s (--conformance-timeout)")
    if "error" in box:
        raise box["error"]
    return box["value"]


class VectorFile(pytest.File):
    """A YAML family file of vectors."""

    def collect(self) -> Any:
        vectors, errors = self.config.stash[STATE].load(self.path)
        for err in errors:
            name = f"{err.vector_id}[load-error]" if err.vector_id else "[load-error]"
            yield LoadErrorItem.from_parent(self, name=name, error=err)
        for vector in vectors:
            for dtype in vector.dtypes:
                yield VectorItem.from_parent(self, name=f"{vector.id}[{dtype}]", vector=vector, dtype=dtype)


class LoadErrorItem(pytest.Item):
    """Stands for a vector (or file) that could not be loaded: fails with the loader's one line."""

    def __init__(self, *, error: VectorError, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.error = error
        self.result = Result.for_load_error(error.vector_id or str(self.path.name), self.path.stem, str(error))

    def runtest(self) -> None:
        raise ConformanceFailure(str(self.error))

    def repr_failure(self, excinfo: Any, style: Any = None) -> str:
        return str(excinfo.value) if excinfo.errisinstance(ConformanceFailure) else super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, f"vector file {self.path.name}"


def mode_record(outcome: Outcome) -> dict:
    """What the JSON keeps of one mode's run."""
    if outcome.unsupported:
        return {"unsupported": outcome.unsupported}
    cmp = outcome.comparison
    return {"passed": outcome.passed, "first_failing_step": outcome.first_failing_step, "error": outcome.error,
            "max_ratio": json_number(cmp.max_ratio), "worst": {n: w.as_dict() for n, w in cmp.worst.items()},
            "curve": cmp.curve, "liveness": outcome.liveness, "problems": cmp.problems}


def outcome_text(outcome: Outcome) -> list[str]:
    """The lines of one failing mode in the failure report."""
    step = outcome.first_failing_step
    lines = [f"  {outcome.mode} mode: fails{f' from step {step}' if step else ''}"]
    if outcome.error:
        return lines + [f"    {outcome.error}"]
    body = failure_text(outcome.comparison, "").splitlines()[1:]
    return lines + [f"  {line}" for line in body] + [f"    {line}" for line in outcome.liveness]


def observability(outcomes: list[Outcome]) -> dict[str, list[str]]:
    """What the modes that ran compared, and what the candidate never exposed."""
    seen = [o.comparison.observability() for o in outcomes]
    checked = [k for k in ("iterations", "variable", "m", "v", "vhat") if any(k in s["checked"] for s in seen)]
    hidden = [k for k in ("iterations", "variable", "m", "v", "vhat")
              if k not in checked and any(k in s["not_exposed"] for s in seen)]
    return {"checked": checked, "not_exposed": hidden}


class VectorItem(pytest.Item):
    """One vector in one dtype, run against the candidate in every selected mode."""

    def __init__(self, *, vector: Vector, dtype: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.vector, self.dtype = vector, dtype
        self.result = Result.for_vector(vector, dtype)

    def runtest(self) -> None:
        state = self.config.stash[STATE]
        modes = MODES if state.mode == "both" else (state.mode,)
        header = f"{self.vector.id} [{self.dtype}] ({', '.join(self.vector.clauses)})"
        result = self.result
        try:
            if state.isolation is not None:
                outcomes = state.isolation.run(self.vector, self.dtype, modes, state.timeout)
            else:
                outcomes = call_with_timeout(lambda: run(state.adapter, self.vector, self.dtype, modes), state.timeout)
        except CandidateCrash as exc:
            result.message = str(exc)
            raise ConformanceFailure(f"{header}: {exc}") from None
        except Unsupported as exc:
            result.message = result.unsupported = str(exc)
            pytest.skip(f"unsupported: {exc}")
        except VectorError as exc:
            result.message, result.kit_error = str(exc), True
            raise ConformanceFailure(str(exc)) from None
        except TimeoutError as exc:
            state.adapter.interrupt()
            stream.abandon()  # the run may still be going in its thread: later ones take buffers of their own
            result.message = str(exc)
            raise ConformanceFailure(f"{header}: {exc}") from None
        ran = [o for o in outcomes if o.unsupported is None]
        result.candidate_seconds = sum(o.candidate_seconds for o in outcomes)
        result.modes = {o.mode: mode_record(o) for o in outcomes}
        result.observed = observability(ran)
        steps = [o.first_failing_step for o in ran if o.first_failing_step is not None]
        result.first_failing_step = min(steps) if steps else None
        result.max_ratio = json_number(max(o.comparison.max_ratio for o in ran))
        failing = [o for o in ran if not o.passed]
        if not failing:
            return
        lines = [f"{header}: does not conform"]
        for outcome in failing:
            lines += outcome_text(outcome)
        lines += [f"  {o.mode} mode: unsupported: {o.unsupported}" for o in outcomes if o.unsupported]
        if result.observed["not_exposed"]:
            lines.append(f"  checked: {', '.join(result.observed['checked'])}; "
                         f"not exposed: {', '.join(result.observed['not_exposed'])}")
        # Diagnose the numbers (single-step first: nothing accumulates there), not a run that raised or did not load.
        numeric = chosen(failing)
        found = diagnose(self.vector, self.dtype, numeric) if numeric else None
        if found is not None:
            result.diagnosis = found.as_dict()
            lines += [f"  {line}" for line in found.lines()]
        result.message = lines[2].strip() if len(lines) > 2 else lines[0]
        raise ConformanceFailure("\n".join(lines))

    def repr_failure(self, excinfo: Any, style: Any = None) -> str:
        if excinfo.errisinstance(ConformanceFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, f"vector {self.vector.id} [{self.dtype}]"
