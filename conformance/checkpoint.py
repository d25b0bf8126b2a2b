"""``--checkpoint[=FORMAT]``: every vector is resumed from a checkpoint in a fresh process.

The candidate runs the first half of the vector's steps (``RunSpec.steps // 2``; a one-step vector saves before its
step) in the kit's process; then the adapter saves it with the framework's own serialization
(``Adapter.checkpoint_save``), a fresh Python process builds the candidate the same way (same adapter, same
``RunSpec``) and restores it from the files (``Adapter.checkpoint_restore``), and the rest of the steps run there,
reached over a pipe.  The restore always happens before the resumed process's first step, so a framework that
builds its slots lazily restores them when they are created (deferred restoration).

What must hold: right after the restore, every part of the state the candidate exposes (``iterations``, the
variables, the slots that exist yet) equals what was saved, bit for bit ("iterations did not survive the
restore: ..."); after every step the resumed run equals the uninterrupted one bit for bit (the adapter's twin,
binding: a difference fails the item); and the oracle judges the whole trajectory under the usual bound.  Single-step
mode, which loads the oracle's state before every step, would replace the restored state: checkpoint runs are
judged in trajectory mode, and the header says so.

A format named ``NAME-to-KERNEL`` resumes with another execution mode (torch: saved with ``fused``, resumed with
``foreach``).  Kernels round differently, so there the uninterrupted run is reported beside the verdict rather than
binding.  The child processes are ``conformance.isolation``'s, one per resume (killed by its id once the item is
over), the next one started ahead so that its imports overlap the first half of the next item.
"""

from __future__ import annotations

import shutil
import tempfile
from typing import Any

import numpy as np

from conformance.errors import first_line
from conformance.inputs import StepCallable, StepSchedule
from conformance.isolation import CandidateCrash, Isolation


class ResumeError(Exception):
    """The resumed run could not go on: the state did not survive the restore, or the resumed process died."""


def cross_kernel(fmt: str) -> str | None:
    """The execution mode a ``NAME-to-KERNEL`` format resumes with, or None for a format that keeps the run's."""
    return fmt.split("-to-", 1)[1] if "-to-" in fmt else None


def survived(saved: dict, restored: dict) -> str | None:
    """What of the saved state the restored candidate does not hold bit for bit, or None.  A tensor the restored
    candidate does not show yet (a slot created at its first step) is left to the steps that follow."""
    if saved.get("iterations") is not None and restored.get("iterations") is not None \
            and int(saved["iterations"]) != int(restored["iterations"]):
        return f"iterations did not survive the restore: {restored['iterations']} after loading, {saved['iterations']} saved"
    for name, fields in saved.items():
        if name == "iterations":
            continue
        for field, want in fields.items():
            have = restored.get(name, {}).get(field)
            if want is None or have is None:
                continue
            want, have = np.asarray(want), np.asarray(have)
            if want.shape != have.shape or want.dtype != have.dtype:
                return (f"{name}.{field} did not survive the restore: {have.dtype}{list(have.shape)} after loading, "
                        f"{want.dtype}{list(want.shape)} saved")
            bits = f"u{want.dtype.itemsize}"  # bit for bit: -0.0 is not 0.0, a NaN keeps its payload
            differ = np.ascontiguousarray(want).view(bits) != np.ascontiguousarray(have).view(bits)
            if differ.any():
                i = tuple(int(x) for x in np.argwhere(differ)[0])
                return (f"{name}.{field} did not survive the restore: {int(differ.sum())} / {want.size} elements "
                        f"differ, at {i} {float(have[i])!r} after loading, {float(want[i])!r} saved")
    return None


class CheckpointAdapter:
    """The adapter of ``--checkpoint``: the candidate's own adapter (``inner``, to which everything else is
    delegated), whose sessions are saved at the middle step and resumed in a fresh process."""

    twin_label = "the uninterrupted run"

    def __init__(self, inner: Any, fmt: str, spec: str, timeout: float) -> None:
        self.inner, self.format, self.timeout = inner, fmt, timeout
        self.twin_binding = cross_kernel(fmt) is None  # another kernel rounds differently: reported, not binding
        self.spawn = (spec, inner.name, inner.raw, inner.device, inner.execution, dict(inner.absent),
                      getattr(inner, "world_size", 2), getattr(inner, "split", "even"))
        self.children: list[Isolation] = []  # [the one serving the item now (if any), the one started ahead]
        self.directories: list[str] = []  # the checkpoint of the item now

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @property
    def checkpoint(self) -> dict:
        """What the report header and the results document say of the checkpoint run."""
        kernel = cross_kernel(self.format)
        return {"format": self.format, "text": self.inner.checkpoint_formats[self.format],
                "saved_after": "half of each vector's steps (steps // 2), restored in a fresh process",
                "resumed_execution": kernel or self.inner.execution, "twin_binding": self.twin_binding}

    def missing(self) -> dict:
        """What the candidate is not run with, and what the format cannot carry across the restore."""
        return {**self.inner.missing(), **self._lost()}

    def _lost(self) -> dict:
        return getattr(self.inner, "checkpoint_lacking", lambda fmt: {})(self.format)

    def unsupported(self, vector: Any, dtype: str) -> str | None:
        """The candidate's own reason, else a feature of the vector that the format cannot carry."""
        lost = self._lost()
        return self.inner.unsupported(vector, dtype) or next(
            (f"--checkpoint={self.format}: {lost[f]}" for f in vector.features if f in lost), None)

    def twin(self) -> Any:
        """The same candidate, never interrupted: the resumed run must reproduce it."""
        return self.inner

    def start(self, spec: Any) -> "ResumedSession":
        return ResumedSession(self, spec)

    def directory(self) -> str:
        """A new folder for one item's checkpoint; the previous items' folders are removed."""
        for old in self.directories:
            shutil.rmtree(old, ignore_errors=True)
        self.directories = [tempfile.mkdtemp(prefix="adam-checkpoint-")]
        return self.directories[0]

    def take(self) -> Isolation:
        """A fresh child for one resume; the one serving the previous item is killed, and the next is started."""
        for child in self.children[:-1]:
            child.stop()
        fresh = self.children[-1] if self.children else self._child()
        ahead = self._child()
        ahead.warm()
        self.children = [fresh, ahead]
        return fresh

    def _child(self) -> Isolation:
        child = Isolation(*self.spawn)
        child.after_crash = "(--checkpoint: every resume gets a fresh process)"
        return child

    def interrupt(self) -> None:
        """An item ran past the time limit: its resumed process is killed (the one started ahead stays)."""
        for child in self.children[:-1]:
            child.stop()
        self.inner.interrupt()

    def close(self) -> None:
        """The session ends: every child process is killed."""
        for child in self.children:
            child.stop()
        self.children = []
        for old in self.directories:
            shutil.rmtree(old, ignore_errors=True)


class ResumedSession:
    """One vector's candidate: in process until the save step, then in the fresh child that restored it."""

    def __init__(self, adapter: CheckpointAdapter, spec: Any) -> None:
        self.adapter, self.spec = adapter, spec
        self.save_at = spec.steps // 2
        self.local: Any = adapter.inner.start(spec)
        self.child: Isolation | None = None

    def apply(self, grads: dict[str, Any], step: int) -> None:
        if self.child is None and step == self.save_at:
            self._resume()
        if self.child is None:
            self.local.apply(grads, step)
        else:
            self._ask(("call", "apply", (grads, step), step))

    def read(self) -> dict:
        if self.child is None:
            return self.local.read()
        return self._ask(("call", "read", (), self.spec.clock.step))

    def load(self, state: dict) -> None:
        if self.child is None:
            self.local.load(state)
        else:
            self._ask(("call", "load", (state,), self.spec.clock.step))

    def _resume(self) -> None:
        """Save, restore in a fresh process, and check that what was saved came back."""
        fmt = self.adapter.format
        directory = self.adapter.directory()  # kept while the item runs: a deferred restoration reads it later
        saved = self.local.read()
        self.adapter.inner.checkpoint_save(self.local, fmt, directory)
        self.local = None  # the first half's candidate goes: only the files carry its state
        self.child = self.adapter.take()
        restored = self._ask(("resume", self.spec, fmt, directory))
        problem = survived(saved, restored)
        if problem:
            raise ResumeError(f"{problem} ({fmt}, saved after step {self.save_at})")

    def _ask(self, request: tuple) -> Any:
        try:
            status, result, calls = self.child._ask(request, self.adapter.timeout)
        except CandidateCrash as exc:
            raise ResumeError(f"the resumed process died: {first_line(exc)}") from None
        for name, seen in calls.items():  # the callables' calls in the child count as the candidate's calls
            obj = self.spec.hyper.get(name)
            if isinstance(obj, StepCallable):
                obj.called_at |= seen
            elif isinstance(obj, StepSchedule):
                obj.steps_seen[:] = seen
        if status == "raised":
            raise result
        return result
