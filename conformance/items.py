"""pytest collection of vector files: one item per vector x dtype, and one failing item per bad vector."""

from __future__ import annotations

import threading
from typing import Any, Callable

import pytest

from conformance import tolerance
from conformance.adapters import Unsupported
from conformance.compare import compare_trajectory, failure_text
from conformance.diagnose import diagnose
from conformance.loader import Vector, VectorError
from conformance.runner import CandidateError, run_vector


class ConformanceFailure(Exception):
    """A vector the candidate does not conform to; the message is the whole report."""


def call_with_timeout(fn: Callable[[], Any], seconds: float) -> Any:
    """Run ``fn`` in a worker thread; TimeoutError if it has not returned after ``seconds``.

    A hung candidate cannot be killed from Python: its thread is left behind
    (daemon) and the run goes on with the next item.
    """
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=target, daemon=True, name="adam-conformance-candidate")
    worker.start()
    worker.join(seconds if seconds > 0 else None)
    if worker.is_alive():
        raise TimeoutError(f"the candidate did not finish within {seconds:g} s (--conformance-timeout)")
    if "error" in box:
        raise box["error"]
    return box["value"]


class VectorFile(pytest.File):
    """A YAML family file of vectors."""

    def collect(self) -> Any:
        from conformance.plugin import STATE

        state = self.config.stash[STATE]
        vectors, errors = state.load(self.path)
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
        self.conformance = {"vector": error.vector_id or str(self.path.name), "family": self.path.stem, "level": None,
                            "clauses": [], "dtype": None, "message": str(error)}

    def runtest(self) -> None:
        raise ConformanceFailure(str(self.error))

    def repr_failure(self, excinfo: Any, style: Any = None) -> str:
        return str(excinfo.value) if excinfo.errisinstance(ConformanceFailure) else super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, f"vector file {self.path.name}"


class VectorItem(pytest.Item):
    """One vector in one dtype, run against the candidate."""

    def __init__(self, *, vector: Vector, dtype: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.vector, self.dtype = vector, dtype
        self.conformance: dict[str, Any] = {
            "vector": vector.id, "family": vector.family, "level": vector.level, "clauses": list(vector.clauses),
            "dtype": dtype, "first_failing_step": None, "max_ratio": None, "worst": {}, "message": None,
        }

    def runtest(self) -> None:
        from conformance.plugin import STATE

        state = self.config.stash[STATE]
        header = f"{self.vector.id} [{self.dtype}] ({', '.join(self.vector.clauses)}), {state.mode} mode"
        try:
            run = call_with_timeout(lambda: run_vector(state.adapter, self.vector, self.dtype), state.timeout)
        except Unsupported as exc:
            self.conformance["message"] = str(exc)
            pytest.skip(f"unsupported: {exc}")
        except (CandidateError, TimeoutError) as exc:
            step = getattr(exc, "step", None)
            self.conformance.update(message=str(exc), first_failing_step=step or None)
            raise ConformanceFailure(f"{header}: {exc}") from None
        self.conformance["candidate_seconds"] = run.candidate_seconds
        bounds = tolerance.bounds(self.vector, self.dtype, carried=state.mode == "trajectory")
        cmp = compare_trajectory(run.observed, self.vector.expected, bounds, self.dtype)
        self.conformance.update(
            first_failing_step=cmp.first_failing_step,
            max_ratio=cmp.max_ratio if cmp.max_ratio != float("inf") else "inf",
            worst={name: w.as_dict() for name, w in cmp.worst.items()},
        )
        problems = [f"  {line}" for line in run.liveness]
        if cmp.passed and not problems:
            return
        text = failure_text(cmp, f"{header}: does not conform")
        if problems:
            text = "\n".join([text] + problems)
        if not cmp.passed:
            diagnosis = diagnose(self.vector, self.dtype, run.observed, bounds)
            if diagnosis is not None:
                self.conformance["diagnosis"] = diagnosis.as_dict()
                text += f"\n  diagnosis: {diagnosis.text()}"
        self.conformance["message"] = text.splitlines()[1].strip() if len(text.splitlines()) > 1 else text
        raise ConformanceFailure(text)

    def repr_failure(self, excinfo: Any, style: Any = None) -> str:
        if excinfo.errisinstance(ConformanceFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, f"vector {self.vector.id} [{self.dtype}]"
