"""pytest collection of vector files: one item per vector x dtype, and one failing item per bad vector."""

from __future__ import annotations

from typing import Any

import pytest

from conformance.errors import TimedOut, Unsupported
from conformance.judge.compare import failure_text
from conformance.diagnosis.diagnose import chosen, diagnose
from conformance.isolation import CandidateCrash
from conformance.drive.timeout import call_with_timeout
from conformance.load.files import Pending
from conformance.load.vector import Vector, VectorError
from conformance.report.record import Result
from conformance.drive import large
from conformance.drive.runner import MODES, Outcome, run
from conformance.session import SESSION


class ConformanceFailure(Exception):
    """A vector the candidate does not conform to; the message is the whole report."""


class VectorFile(pytest.File):
    """A YAML family file of vectors."""

    def collect(self) -> Any:
        parsed = self.config.stash[SESSION].load(self.path)
        for err in parsed.errors + [e for e in parsed.entries if isinstance(e, VectorError)]:
            yield LoadErrorItem.from_parent(self, name=_error_name(err), error=err)
        for pending in parsed.pending:
            for dtype in pending.dtypes:
                yield VectorItem.from_parent(self, name=f"{pending.id}[{dtype}]", pending=pending, dtype=dtype)


def _error_name(err: VectorError) -> str:
    return f"{err.vector_id}[load-error]" if err.vector_id else "[load-error]"


def verify_selected(items: list[pytest.Item]) -> None:
    """Verify the vectors of the items left to run (after -k, -m, --level, --scale): the oracle re-derives only
    what is selected.  The items of a vector that fails verification become its one failing load-error item."""
    out: list[pytest.Item] = []
    broken: set[int] = set()
    for item in items:
        pending = getattr(item, "pending", None)
        if pending is None:
            out.append(item)
            continue
        try:
            pending.vector()
            out.append(item)
        except VectorError as err:
            if id(pending) not in broken:  # one item for the vector, where its first item was
                broken.add(id(pending))
                out.append(LoadErrorItem.from_parent(item.parent, name=_error_name(err), error=err))
    items[:] = out


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


def outcome_text(outcome: Outcome) -> list[str]:
    """The lines of one failing mode in the failure report."""
    step = outcome.first_failing_step
    lines = [f"  {outcome.mode} mode: fails{f' from step {step}' if step else ''}"]
    if outcome.error:
        return lines + [f"    {outcome.error}"]
    body = failure_text(outcome.comparison, "").splitlines()[1:] if not outcome.comparison.passed else []
    extra = [outcome.replicas] if outcome.replicas else []
    extra += [outcome.twin] if outcome.twin and outcome.twin_binding else []
    return lines + [f"  {line}" for line in body] + [f"    {line}" for line in outcome.liveness + extra]


#: The most lines one failure prints (a screenful); the JSON and HTML reports keep every tensor.
SCREENFUL = 40


def _items(mode_lines: list[str]) -> list[list[str]]:
    """A mode's lines after its first, as items: a line with the lines indented deeper under it (a tensor's
    violation is three lines), so that a cut never leaves half of one."""
    items: list[list[str]] = []
    for line in mode_lines:
        depth = len(line) - len(line.lstrip())
        if items and depth > len(items[-1][0]) - len(items[-1][0].lstrip()):
            items[-1].append(line)
        else:
            items.append([line])
    return items


def screenful(head: list[str], modes: list[list[str]], tail: list[str], limit: int = SCREENFUL) -> list[str]:
    """The failure report cut to at most ``limit`` lines (where the kept lines allow it).

    The header, each failing mode's first line and ``tail`` (unsupported modes, what was checked, the diagnosis and
    localisation) are always kept; the modes' items (problems and tensors, in their order) are taken one per mode in
    turn, so that every mode shows its first failures; a last line says how many lines were left out.
    """
    if len(head) + sum(map(len, modes)) + len(tail) <= limit:
        return head + [line for mode in modes for line in mode] + tail
    room = limit - len(head) - len(tail) - len(modes) - 1  # the omission line
    queues = [_items(mode[1:]) for mode in modes]
    kept: list[list[str]] = [mode[:1] for mode in modes]
    taking = True
    while taking:
        taking = False
        for queue, out in zip(queues, kept):
            if queue and len(queue[0]) <= room:
                room -= len(queue[0])
                out += queue.pop(0)
                taking = True
    left_out = sum(map(len, modes)) - sum(map(len, kept))
    return head + [line for mode in kept for line in mode] + tail + [
        f"  ... {left_out} more lines left out (a failure prints at most {limit} lines); the --conformance-json and "
        "--conformance-html reports have every tensor"]


class VectorItem(pytest.Item):
    """One vector in one dtype, run against the candidate in every selected mode."""

    def __init__(self, *, pending: Pending, dtype: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pending, self.dtype = pending, dtype
        self.result = Result.for_vector(pending, dtype)
        adapter = getattr(self.config.stash.get(SESSION, None), "adapter", None)
        if adapter is not None and adapter.execution in getattr(adapter, "distributed_executions", ()):
            from conformance.adapters import replicas

            # Spec section R, in these modes (once: the clipping vectors cite ADAM-TF2-DIST-1 themselves).
            self.result.clauses += [c for c in replicas.clauses(pending.record) if c not in self.result.clauses]

    @property
    def vector(self) -> Vector:
        """The verified vector (``verify_selected`` verified it when the item was selected)."""
        return self.pending.vector()

    def runtest(self) -> None:
        kit = self.config.stash[SESSION]
        modes = MODES if kit.mode == "both" else (kit.mode,)
        header = f"{self.vector.id} [{self.dtype}] ({', '.join(self.vector.clauses)})"
        result = self.result
        try:
            if kit.isolation is not None:
                outcomes = kit.isolation.run(self.vector, self.dtype, modes, kit.timeout, kit.profile)
            else:
                outcomes = call_with_timeout(lambda: run(kit.adapter, self.vector, self.dtype, modes, profile=kit.profile),
                                             kit.timeout)
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
            kit.adapter.interrupt()
            large.abandon()  # the run may still be going in its thread: later ones take buffers of their own
            result.message = str(exc)
            raise TimedOut(f"{header}: {exc}") from None
        result.record_run(outcomes)
        ran = [o for o in outcomes if o.unsupported is None]
        failing = [o for o in ran if not o.passed]
        if not failing:
            return
        modes_text = [outcome_text(outcome) for outcome in failing]
        tail = [f"  {o.mode} mode: unsupported: {o.unsupported}" for o in outcomes if o.unsupported]
        if result.observed["not_exposed"]:
            tail.append(f"  checked: {', '.join(result.observed['checked'])}; "
                        f"not exposed: {', '.join(result.observed['not_exposed'])}")
        # Diagnose the numbers (single-step first: nothing accumulates there), not a run that raised or did not load.
        numeric = chosen(failing)
        found = diagnose(self.vector, self.dtype, numeric, kit.profile) if numeric and kit.diagnosis else None
        if found is not None and not found.matches:
            # A deviation with state of its own (a step count per variable) shows in single-step mode only as far
            # as loading the state lets it: the other mode's numbers are tried before saying nothing explains it.
            for other in (o for o in failing if o is not numeric and o.observed and not o.comparison.passed):
                again = diagnose(self.vector, self.dtype, other, kit.profile)
                if again is not None and again.matches:
                    found = again
                    break
        if found is not None:
            result.diagnosis = found.as_dict()
            tail += [f"  {line}" for line in found.lines()]
        head = [f"{header}: does not conform"]
        lines = head + [line for text in modes_text for line in text] + tail
        result.message = lines[2].strip() if len(lines) > 2 else lines[0]
        raise ConformanceFailure("\n".join(screenful(head, modes_text, tail)))

    def repr_failure(self, excinfo: Any, style: Any = None) -> str:
        if excinfo.errisinstance((ConformanceFailure, TimedOut)):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, f"vector {self.pending.id} [{self.dtype}]"
