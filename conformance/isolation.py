"""``--isolate``: every call into the candidate runs in a child process, so that a candidate that kills its
interpreter fails one item.

The vector items, the API checks and the property checks (``Isolation.check``: the check function itself runs in
the child, with its candidate fixtures rebuilt there) and the capability probe.  A segfault in native code, an
abort, ``os._exit`` or an out-of-memory kill ends the child, not the run: the item fails with the cause and the
step or the check ("the candidate crashed the process: SIGSEGV at step 3", "... SIGSEGV in
api/test_checkpoint_resume[adam]"), and the next item gets a fresh child.  One child serves items until it dies, so a framework is imported once per
crash rather than once per item.  The child builds its own adapter from the same options and takes the
parent's probe results, so both see the same candidate.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import pickle
import time
import traceback
from types import SimpleNamespace
from typing import Any

import pytest

from conformance.errors import Unsupported, exit_cause, first_line
from conformance.load.vector import VectorError


class CandidateCrash(Exception):
    """The child process running the item died."""


#: The fixtures through which the kit's checks reach the candidate: the child builds its own (``fixture``).
CANDIDATE_FIXTURES = ("adam_api", "adam_aliases", "adam_oracle", "property_env")
#: What a check may raise besides an Exception: pytest's skip, fail and xfail outcomes.
OUTCOMES = (pytest.skip.Exception, pytest.fail.Exception)


def fixture(name: str, adapter: Any, profile: tuple[str, ...]) -> Any:
    """A candidate fixture's value (``adam_api``, ``adam_aliases``, ``adam_oracle``); the plugin's fixtures and the
    child build them here, so that both hand a check the same thing.  Unsupported when the adapter has no such API."""
    if name == "adam_api":
        from conformance.features import Feature

        api = adapter.v2_api()
        # Checks whose subject is not AMSGrad use it only where the candidate has it (vhat is one more slot to see).
        api.amsgrad = Feature.AMSGRAD not in adapter.missing()
        return api
    if name == "adam_aliases":
        return adapter.candidate, adapter.page_aliases()
    if name == "adam_oracle":
        from reference import variants

        return variants.compose(*(variants.deviation(n) for n in profile))
    raise ValueError(f"not a candidate fixture: {name}")


class _Options:
    """``config.getoption`` for ``property.Environment`` in the child: the parent's values, by option name."""

    def __init__(self, values: dict) -> None:
        self.values = values

    def getoption(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives a pickle round trip, else one of the kind the plugin tells apart, with its message."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - a framework's exception may hold anything
        pass
    for kind in (Unsupported, NotImplementedError, AttributeError, AssertionError):
        if isinstance(exc, kind):
            return kind(str(exc))
    return RuntimeError(f"{type(exc).__name__}: {first_line(exc)}")


def _check(adapter: Any, request: tuple) -> tuple:
    """The child's side of ``Isolation.check``: run the check with its fixtures built here; the reply carries what it
    raised (re-raised by the parent, so the plugin's hooks judge it as they would in process) and its tracker."""
    _, module, function, args, fixtures, context = request
    kwargs, kit = dict(args), None
    for name in fixtures:
        if name == "property_env":
            from conformance.property import Environment

            kit = SimpleNamespace(spec=context["spec"], adapter=adapter, trackers={},
                                  expectations=SimpleNamespace(avoid=context["avoid"]) if context["avoid"] else None)
            kwargs[name] = Environment(kit, _Options(context["options"]), context["name"])
        else:
            kwargs[name] = fixture(name, adapter, context["profile"])
    raised, attribute, trace = None, None, ""
    try:
        getattr(importlib.import_module(module), function)(**kwargs)
    except (Exception, *OUTCOMES) as exc:
        raised, trace = _portable(exc), "".join(traceback.format_exception(exc))
        attribute = getattr(exc, "name", None) if isinstance(exc, AttributeError) else None  # a pickle drops it
    tracker = kit.trackers.get(context["name"]) if kit is not None else None
    return raised, attribute, trace, tracker


def _calls(spec: Any) -> dict:
    """The steps at which each harness callable and schedule of ``spec`` was called (the parent merges them into its
    own objects, so that liveness, ADAM-HYPER-1 and -3, is judged over the whole resumed run)."""
    from conformance.inputs import StepCallable, StepSchedule

    out: dict[str, Any] = {}
    for name, obj in spec.hyper.items():
        if isinstance(obj, StepCallable):
            out[name] = set(obj.called_at)
        elif isinstance(obj, StepSchedule):
            out[name] = list(obj.steps_seen)
    return out


def _resumed(adapter: Any, resumed: Any, request: tuple) -> tuple[Any, tuple]:
    """``--checkpoint``'s requests: ``("resume", spec, format, directory)`` restores the candidate here
    (``Adapter.checkpoint_restore``) and answers its state; ``("call", method, args, step)`` calls the restored
    session's ``apply``, ``read`` or ``load`` with the harness's clock at ``step``.  What the candidate raises is
    sent back to be raised in the parent, so that the runner judges it as it would in process."""
    try:
        if request[0] == "resume":
            _, spec, fmt, directory = request
            resumed = (adapter.checkpoint_restore(spec, fmt, directory), spec)
            result = resumed[0].read()
        else:
            _, method, args, step = request
            session, spec = resumed
            spec.clock.step = step
            result = getattr(session, method)(*args)
        return resumed, ("ok", ("ok", result, _calls(resumed[1])))
    except Exception as exc:  # noqa: BLE001 - the candidate's, raised again in the parent
        return resumed, ("ok", ("raised", _portable(exc), {}))


def _serve(conn: Any, spec: str, adapter_name: str | None, raw: bool, device: str, execution: str | None,
           absent: dict, world_size: int = 2, split: str = "even") -> None:
    """The child: build the adapter once, then run each (vector, dtype, modes) sent and send the outcomes back."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from conformance.drive import resolve
    from conformance.drive.runner import run

    if adapter_name == "pipe":  # --checkpoint with a --candidate-command: the resumed port's own process
        adapter = resolve.resolve_command(spec, timeout=120.0)  # the parent's --conformance-timeout still applies
    else:
        adapter = resolve.resolve(spec, adapter_name, raw=raw, device=device, execution=execution,
                                  world_size=world_size, split=split)
    adapter.absent = absent
    resumed: Any = None  # --checkpoint: the session restored here, and its RunSpec
    while True:
        try:
            request = conn.recv()
        except EOFError:
            getattr(adapter, "close", lambda: None)()  # a distributed mode's rank processes end with the child
            return
        try:
            if request[0] == "probe":
                from conformance.drive import probe

                reply = ("ok", probe.probe(adapter, request[1]))
            elif request[0] == "check":
                reply = ("ok", _check(adapter, request))
            elif request[0] in ("resume", "call"):
                resumed, reply = _resumed(adapter, resumed, request)
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



class Isolation:
    """The child process and how to reach it; restarted after a crash or a timeout."""

    def __init__(self, spec: str, adapter_name: str | None, raw: bool, device: str, execution: str | None,
                 absent: dict, world_size: int = 2, split: str = "even") -> None:
        self.args = (spec, adapter_name, raw, device, execution, dict(absent), world_size, split)
        self.ctx = multiprocessing.get_context("spawn")  # no state of the parent (TensorFlow's threads) is forked
        self.proc: Any = None
        self.crashes = 0
        self.after_crash = "(--isolate: the next item runs in a fresh process)"

    def warm(self) -> None:
        """Start the child now, so that its imports overlap the parent's work (``--checkpoint``'s next resume)."""
        if self.proc is None or not self.proc.is_alive():
            self._start()

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

    def close(self, wait: float = 10.0) -> None:
        """End the child as a session ends: its pipe closed, it closes its adapter (a distributed mode's ranks) and
        returns; killed if it has not within ``wait`` seconds."""
        if self.proc is not None:
            self.conn.close()
            self.proc.join(wait)
        self.stop()

    def probe(self, without: list, timeout: float) -> Any:
        """``probe.probe`` in the child, so that a candidate that crashes while probed cannot end the run;
        then nothing is found absent, and the items that reach the crash report it."""
        from conformance.drive.probe import Capabilities

        try:
            caps = self._ask(("probe", without), timeout)
        except (CandidateCrash, TimeoutError):
            caps = Capabilities({f: f"declared absent with --without: {f.value}" for f in without})
        self.args = self.args[:5] + (dict(caps.absent),) + self.args[6:]
        return caps

    def run(self, vector: Any, dtype: str, modes: tuple[str, ...], timeout: float, profile: tuple[str, ...] = ()) -> list:
        """What ``runner.run`` returns, computed in the child; CandidateCrash or TimeoutError when it cannot say."""
        outcomes, verified = self._ask((vector, dtype, modes, profile), timeout)
        if verified:
            vector.mark_digests_verified()
        return outcomes

    def check(self, module: str, function: str, args: dict, fixtures: list[str], context: dict,
              where: str) -> tuple[BaseException | None, Any]:
        """Run the check ``module.function`` in the child with ``args`` and the candidate ``fixtures`` built there;
        return what it raised (None if nothing) and its property tracker (or None); CandidateCrash naming ``where``
        when the child died.  No time limit: in process the checks have none either, and the verdicts must not differ."""
        raised, attribute, trace, tracker = self._ask(("check", module, function, args, fixtures, context), 0, where)
        if raised is not None and attribute is not None:
            raised.name = attribute
        if raised is not None and trace and hasattr(raised, "add_note"):  # Python 3.11+: pytest shows it
            raised.add_note(f"raised in the --isolate child:\n{trace.rstrip()}")
        return raised, tracker

    def _ask(self, request: tuple, timeout: float, where: str = "") -> Any:
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
                cause = exit_cause(self.proc.exitcode)
                self.proc, self.crashes = None, self.crashes + 1
                place = f" in {where}" if where else f" at step {at}" if at else " while being built"
                raise CandidateCrash(f"the candidate crashed the process: {cause}{place} {self.after_crash}") from None
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
