"""``--isolate``: vector items run in a child process, so that a candidate that kills its interpreter fails one item.

A segfault in native code, an abort, ``os._exit`` or an out-of-memory kill ends the child, not the run: the
item fails with the cause and the step ("the candidate crashed the process: SIGSEGV at step 3"), and the
next item gets a fresh child.  One child serves items until it dies, so a framework is imported once per
crash rather than once per item.  The child builds its own adapter from the same options and takes the
parent's probe results, so both see the same candidate.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from typing import Any

from conformance.errors import Unsupported
from conformance.errors import first_line
from conformance.load.vector import VectorError


class CandidateCrash(Exception):
    """The child process running the item died."""


def _serve(conn: Any, spec: str, adapter_name: str | None, raw: bool, device: str, execution: str | None,
           absent: dict) -> None:
    """The child: build the adapter once, then run each (vector, dtype, modes) sent and send the outcomes back."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from conformance.drive import resolve
    from conformance.drive.runner import run

    adapter = resolve.resolve(spec, adapter_name, raw=raw, device=device, execution=execution)
    adapter.absent = absent
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        try:
            if request[0] == "probe":
                from conformance.drive import probe

                reply = ("ok", probe.probe(adapter, request[1]))
            else:
                vector, dtype, modes, profile = request
                outcomes = run(adapter, vector, dtype, modes, on_step=lambda s: conn.send(("step", s)), profile=profile)
                reply = ("ok", (outcomes, vector.digests_verified))  # the parent's copy learns it too
        except Unsupported as exc:
            reply = ("unsupported", str(exc))
        except VectorError as exc:
            reply = ("vector", exc)
        except Exception as exc:  # noqa: BLE001 - the kit's own failure, reported on the item
            reply = ("error", f"{type(exc).__name__}: {first_line(exc)}")
        conn.send(reply)


def _cause(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return signal.Signals(-exitcode).name
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit status {exitcode}"


class Isolation:
    """The child process and how to reach it; restarted after a crash or a timeout."""

    def __init__(self, spec: str, adapter_name: str | None, raw: bool, device: str, execution: str | None,
                 absent: dict) -> None:
        self.args = (spec, adapter_name, raw, device, execution, dict(absent))
        self.ctx = multiprocessing.get_context("spawn")  # no state of the parent (TensorFlow's threads) is forked
        self.proc: Any = None
        self.crashes = 0

    def _start(self) -> None:
        self.conn, child = self.ctx.Pipe()
        self.proc = self.ctx.Process(target=_serve, args=(child, *self.args), daemon=True,
                                     name="adam-conformance-isolated")
        self.proc.start()
        child.close()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.join()
            self.proc = None

    def probe(self, without: list, timeout: float) -> Any:
        """``probe.probe`` in the child, so that a candidate that crashes while probed cannot end the run;
        then nothing is found absent, and the items that reach the crash report it."""
        from conformance.drive.probe import Capabilities

        try:
            caps = self._ask(("probe", without), timeout)
        except (CandidateCrash, TimeoutError):
            caps = Capabilities({f: f"declared absent with --without: {f.value}" for f in without})
        self.args = self.args[:5] + (dict(caps.absent),)
        return caps

    def run(self, vector: Any, dtype: str, modes: tuple[str, ...], timeout: float, profile: tuple[str, ...] = ()) -> list:
        """What ``runner.run`` returns, computed in the child; CandidateCrash or TimeoutError when it cannot say."""
        outcomes, verified = self._ask((vector, dtype, modes, profile), timeout)
        if verified:
            vector.mark_digests_verified()
        return outcomes

    def _ask(self, request: tuple, timeout: float) -> Any:
        if self.proc is None or not self.proc.is_alive():
            self._start()
        self.conn.send(request)
        deadline = time.monotonic() + timeout if timeout > 0 else None
        at = 0  # the step the child said it was starting (a crash happened in it)
        while True:
            if not self.conn.poll(None if deadline is None else max(deadline - time.monotonic(), 0.0)):
                self.stop()
                raise TimeoutError(f"the candidate did not finish within {timeout:g} s (--conformance-timeout); its "
                                   "process was killed")
            try:
                kind, payload = self.conn.recv()
            except (EOFError, OSError):
                self.proc.join()
                cause = _cause(self.proc.exitcode)
                self.proc, self.crashes = None, self.crashes + 1
                raise CandidateCrash(f"the candidate crashed the process: {cause}" + (f" at step {at}" if at else
                                     " while being built") + " (--isolate: the next item runs in a fresh process)") from None
            if kind != "step":
                break
            at = payload
        if kind == "unsupported":
            raise Unsupported(payload)
        if kind == "vector":
            raise payload
        if kind == "error":
            raise RuntimeError(payload)
        return payload
