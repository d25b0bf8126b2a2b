"""Adapter for process candidates: a port in any language that speaks ``spec/pipe-protocol.md`` (adam-pipe/1).

``pytest --candidate-command="node ports/js/adam.js"`` starts the command once per session and sends it
JSON lines; every response is validated against ``spec/pipe.schema.json``.  A crash, a hang, a line that is
not JSON or a response that violates the schema fails the item that was running, with one line naming the
request and the field; the process is restarted for the next request.  What the port says it does not
support (in ``hello``, or with an ``unsupported`` response) is unsupported with the port's reason.
"""

from __future__ import annotations

import base64
import json
import queue
import subprocess
import sys
import threading
import weakref
from collections import deque
from importlib import resources
from typing import Any

import jsonschema
import numpy as np

from conformance.errors import Unsupported
from conformance.adapters.base import STATE_FORMAT, Adapter, restore_state, save_state
from conformance.dtypes import DTYPES, DYADIC, NUMPY_DTYPES
from conformance.features import HYPERPARAMETERS, Feature
from conformance.inputs import RunSpec, StepSchedule

PROTOCOL = "adam-pipe/1"
#: P-3: the ``schedule`` flag of a port that holds no schedule but takes the learning rate of each call.
PER_STEP = "per-step"
SCHEMA = json.loads(resources.files("spec").joinpath("pipe.schema.json").read_text(encoding="utf-8"))


def _validator(ref: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({**SCHEMA, "$ref": ref})


#: Per op and status, the schema a response must meet: judged against the branch its status names, so that an
#: error names the field that is wrong rather than "not valid under any of the given schemas".
VALIDATORS = {name.removesuffix("_response"): {"ok": _validator(f"#/$defs/{name}/oneOf/0"),
                                               "other": _validator("#/$defs/not_ok"), "any": _validator(f"#/$defs/{name}")}
              for name in SCHEMA["$defs"] if name.endswith("_response")}


class PipeError(Exception):
    """The port broke the protocol: it exited, hung, or wrote something that is not a valid response."""


class PortError(Exception):
    """The port answered ``status: error``: it tried and failed (a failure of the item, like an exception)."""


# --- P-2: arrays ------------------------------------------------------------------------------------


def encode(array: np.ndarray, dtype: str) -> dict:
    """An array in the session's dtype as ``{dtype, shape, data}``: little-endian bytes, base64."""
    a = np.array(np.asarray(array).astype(NUMPY_DTYPES[dtype]), order="C")  # keeps 0-d arrays 0-d
    raw = a.view(np.uint16).astype("<u2") if dtype == "bfloat16" else a.astype(a.dtype.newbyteorder("<"))
    return {"dtype": dtype, "shape": list(a.shape), "data": base64.b64encode(raw.tobytes()).decode("ascii")}


def decode(obj: dict) -> np.ndarray:
    """The array a ``{dtype, shape, data}`` object holds; ValueError if its bytes do not fit its shape."""
    dtype, shape = NUMPY_DTYPES[obj["dtype"]], tuple(obj["shape"])
    raw = base64.b64decode(obj["data"], validate=True)
    n = int(np.prod(shape, dtype=np.int64))
    if len(raw) != n * dtype.itemsize:
        raise ValueError(f"{len(raw)} bytes of data for shape {list(shape)} of {obj['dtype']} ({n * dtype.itemsize} expected)")
    little = np.dtype("<u2") if obj["dtype"] == "bfloat16" else dtype.newbyteorder("<")
    return np.frombuffer(raw, dtype=little).astype(little.newbyteorder("=")).view(dtype).reshape(shape).copy()


def gradient(g: Any, dtype: str) -> Any:
    """A harness gradient (array, IndexedSlices or None) as P-2 gradient JSON."""
    if g is None:
        return None
    if hasattr(g, "indices"):
        return {"indices": [int(i) for i in np.asarray(g.indices)], "values": encode(g.values, dtype),
                "dense_shape": [int(d) for d in g.dense_shape]}
    return encode(g, dtype)


def _where(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(the response)"


def _startup(timeout: float) -> float:
    """The limit for ``hello``: a process starting may import a framework first, so never under a minute."""
    return 0 if timeout <= 0 else max(timeout, HELLO_TIMEOUT)


HELLO_TIMEOUT = 60.0


# --- the process ----------------------------------------------------------------------------------


class Port:
    """The running command: one request at a time, one response line each, stderr kept for the report."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.proc: subprocess.Popen | None = None
        self.next_id = 0
        self.lock = threading.Lock()
        self.stderr: deque[str] = deque(maxlen=200)
        self.stderr_last = [""]  # the running process's last stderr line, for messages
        self.generation = 0  # how many processes were started: a session lives in one of them

    def start(self) -> None:
        self.generation += 1
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        lines: queue.Queue = queue.Queue()
        self.lines = lines

        def responses(stream: Any) -> None:
            for line in iter(stream.readline, b""):
                lines.put(line)
            lines.put(None)  # end of stdout: the port exited

        # Per process: what a killed port writes as it dies must not land in the next item's report or message.
        stderr: deque[str] = deque(maxlen=200)
        last = [""]
        self.stderr, self.stderr_last = stderr, last

        def diagnostics(stream: Any) -> None:
            for line in iter(stream.readline, b""):
                last[0] = line.decode("utf-8", "replace").rstrip("\n")
                stderr.append(last[0])

        threading.Thread(target=responses, args=(self.proc.stdout,), daemon=True).start()
        self.diagnostics = threading.Thread(target=diagnostics, args=(self.proc.stderr,), daemon=True)
        self.diagnostics.start()

    def stop(self) -> None:
        """Kill the process (a hung or broken port); the next request starts a fresh one."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def request(self, op: str, timeout: float, **fields: Any) -> dict:
        """Send one request and return its validated ``ok`` response; raise for the other statuses.

        A fresh process (the first, or one restarted after a failure) is greeted with ``hello`` first (P-3).
        """
        with self.lock:
            if self.proc is None or self.proc.poll() is not None:
                self.stop()
                self.start()
                if op != "hello":
                    self._status(self._exchange("hello", _startup(timeout), {"protocol": PROTOCOL}))
            response = self._exchange(op, _startup(timeout) if op == "hello" else timeout, fields)
        return self._status(response)

    @staticmethod
    def _status(response: dict) -> dict:
        if response["status"] == "unsupported":
            raise NotImplementedError(response["reason"])
        if response["status"] == "error":
            raise PortError(response["message"])
        return response

    def _exchange(self, op: str, timeout: float, fields: dict) -> dict:
        """One request line out, one validated response line in; PipeError (and a stopped process) otherwise."""
        self.next_id += 1
        rid = self.next_id
        what = f"'{op}'" + (f" (session {fields['session']})" if "session" in fields else "")
        try:
            self.proc.stdin.write(json.dumps({"id": rid, "op": op, **fields}).encode("utf-8") + b"\n")
            self.proc.stdin.flush()
        except OSError:  # BrokenPipeError among them
            self._fail(f"the port exited before {what} could be sent")
        try:
            line = self.lines.get(timeout=timeout if timeout > 0 else None)
        except queue.Empty:
            self._fail(f"the port did not answer {what} within {timeout:g} s (--conformance-timeout)")
        self._flush_stderr()
        if line is None:
            self.proc.wait()
            self.diagnostics.join(1.0)  # its last words, for the message
            self._fail(f"the port exited with status {self.proc.returncode} during {what}")
        try:
            response = json.loads(line)
        except ValueError:
            self._fail(f"the port answered {what} with a line that is not JSON (stdout carries responses only; "
                       f"log to stderr): {line[:80]!r}")
        if not isinstance(response, dict):
            self._fail(f"the port answered {what} with JSON that is not an object: {line[:80]!r}")
        status = response.get("status")
        validator = VALIDATORS[op]["ok" if status == "ok" else "other" if status in ("error", "unsupported") else "any"]
        error = jsonschema.exceptions.best_match(validator.iter_errors(response))
        if error is not None:
            self._fail(f"the port's response to {what} violates spec/pipe.schema.json at {_where(error)}: "
                       f"{error.message[:160]}")
        if response["id"] != rid:
            self._fail(f"the port answered {what} with id {response['id']}, expected {rid}")
        return response

    def _flush_stderr(self) -> None:
        # Written from the thread running the item, so pytest captures it into that item's report.
        while self.stderr:
            print(f"[port stderr] {self.stderr.popleft()}", file=sys.stderr)

    def _fail(self, message: str) -> None:
        last = self.stderr_last[0]
        tail = f" (stderr: {last[:120]})" if last else ""
        self._flush_stderr()
        self.stop()
        raise PipeError(message + tail)


# --- the adapter ----------------------------------------------------------------------------------


class PipeAdapter(Adapter):
    """The candidate is a command line (a list of arguments), run as one process per session."""

    name = "pipe"
    no_clipping = "adam-pipe/1 has no clipping argument: a port is created with the hyperparameters alone"
    framework = "process"
    observes_liveness = False  # a process's callables are its own: the kit sends values, it cannot see calls
    timeout = 120.0  # per request; the plugin sets it to --conformance-timeout

    def __init__(self, candidate: Any, *, raw: bool = False, device: str = "cpu") -> None:
        super().__init__(candidate, raw=raw, device=device)
        self.port = Port(list(candidate))
        self.hello: dict | None = None
        self.sessions = 0
        self.to_close: list[int] = []

    def probe(self) -> dict:
        """The handshake (P-3); its ``supports`` becomes the features the port lacks."""
        try:
            hello = self.port.request("hello", self.timeout, protocol=PROTOCOL)
        except (NotImplementedError, PortError) as exc:
            raise PipeError(f"the port refused 'hello': {exc}") from None
        if hello["protocol"] != PROTOCOL:
            raise PipeError(f"the port speaks {hello['protocol']!r}; this kit speaks {PROTOCOL!r}")
        self.hello = hello
        return hello

    def versions(self) -> dict[str, str]:
        return {"port": f"{self.hello['name']} {self.hello['version']}"} if self.hello else {}

    @property
    def translations(self) -> list[str]:
        out = ["callable and schedule liveness (ADAM-HYPER-1, ADAM-HYPER-3) are not observable through a pipe: "
               "not checked"]
        if self.schedule_per_step:
            out.append("a learning-rate schedule is evaluated by the kit and sent as the learning rate of each "
                       "'apply' (the port holds no schedule: hello says schedule \"per-step\", P-3)")
        return out

    @property
    def schedule_per_step(self) -> bool:
        """Whether the port takes a schedule as the learning rate of each call (P-3 ``"schedule": "per-step"``)."""
        return bool(self.hello) and self.hello["supports"]["schedule"] == PER_STEP

    def lacking(self) -> dict[Feature, str]:
        mixed = {Feature.MIXED_DTYPES: "adam-pipe/1 gives a session one dtype (P-2, P-4): variables of several dtypes in "
                                       "one call cannot be expressed"}
        if not self.hello:
            return mixed
        s = self.hello["supports"]

        def why(what: str) -> str:
            return f"the port does not support {what} (hello)"

        out = {**mixed, **{Feature(d): why(d) for d in DTYPES if d not in s["dtypes"]}}
        for key, features in (("amsgrad", [Feature.AMSGRAD]), ("sparse", [Feature.SPARSE]),
                              ("state_loading", [Feature.STATE_LOADING]), ("schedule", [Feature.SCHEDULE]),
                              ("decay", [Feature.DECAY])):
            if s[key] is False:  # a schedule taken "per-step" is supported (P-3)
                out.update({f: why(key.replace("_", " ")) for f in features})
        out.update({Feature.callable(h): why(f"a callable {h}") for h in HYPERPARAMETERS if h not in callables(s)})
        return out

    def all_null_apply(self) -> dict:
        """P-5 / ADAM-ITER-3: send one ``apply`` whose only gradient is null, in a fresh session; the ``error`` answer
        the spec requires comes back as ``{"error": message}``, an ``ok`` as ``{"ok": True}``.

        No vector sends such a call (a vector is a run that the oracle completes), so without this a port that
        silently accepts it would go unreported.  ``unsupported`` raises NotImplementedError, as everywhere.
        """
        dtype = next((d for d in ("float32", "float64", "float16", "bfloat16") if Feature(d) not in self.missing()), None)
        if dtype is None:
            raise Unsupported("the port supports no dtype the kit can send")
        spec = RunSpec.for_values(dtype, {"a": np.array([1.0, 2.0])}, dict(DYADIC), False)
        session = self.start(spec)
        try:
            session.apply({"a": None}, 0)
        except PortError as exc:
            return {"error": str(exc)}
        return {"ok": True}

    checkpoint_formats = STATE_FORMAT

    def checkpoint_save(self, session: Any, fmt: str, directory: str) -> None:
        save_state(session, directory)

    def checkpoint_restore(self, spec: Any, fmt: str, directory: str) -> Any:
        return restore_state(self.start(spec), directory, spec.clock.step, prime=False)  # P-7: slots by name

    def start(self, spec: Any) -> "PipeSession":
        for sid in self.to_close:  # sessions of finished items: closed here, between requests, never from a finalizer
            try:
                self.port.request("close", self.timeout, session=sid)
            except Exception:  # noqa: BLE001 - a port that cannot close is still usable
                pass
        self.to_close.clear()
        self.sessions += 1
        return PipeSession(self, self.sessions, spec)

    def interrupt(self) -> None:
        """The item ran past its time: kill the port so that the blocked request returns and the next item starts clean."""
        self.port.stop()

    def v2_api(self) -> Any:
        raise Unsupported("a process candidate has no optimizer_v2 API (spec/pipe-protocol.md P-9)")


def callables(supports: dict) -> tuple[str, ...]:
    """The hyperparameters a port takes as callables (P-3): ``true`` is all four, ``false`` none, a list those."""
    flag = supports["callables"]
    if isinstance(flag, bool):
        return HYPERPARAMETERS if flag else ()
    return tuple(h for h in HYPERPARAMETERS if h in flag)


def _hyper(obj: Any) -> Any:
    if isinstance(obj, StepSchedule):
        return {"schedule": [float(x) for x in obj.values]}
    if callable(obj):
        return {"callable": True}
    return float(obj)


class PipeSession:
    """One ``create``d optimizer in the port."""

    def __init__(self, adapter: PipeAdapter, sid: int, spec: Any) -> None:
        self.adapter, self.sid, self.dtype = adapter, sid, spec.dtype
        self.names = list(spec.variables)
        self.callables = {k: v for k, v in spec.hyper.items() if callable(v) and not isinstance(v, StepSchedule)}
        lr = spec.hyper.get("learning_rate")
        # P-3 "per-step": the port holds no schedule, so it is built with the schedule's first value and every
        # 'apply' brings the value at that call's iterations (the kit evaluates it, as the torch adapter does).
        self.per_step = lr if adapter.schedule_per_step and isinstance(lr, StepSchedule) else None
        hyper = None if spec.defaults else {
            **{k: _hyper(spec.hyper[k]) for k in HYPERPARAMETERS}, "decay": float(spec.hyper.get("decay", 0.0))}
        if hyper is not None and self.per_step is not None:
            hyper["learning_rate"] = float(self.per_step.values[0])
        self.generation = None
        self._request("create", dtype=spec.dtype, amsgrad=spec.amsgrad, hyperparameters=hyper,
                      variables={n: encode(v, spec.dtype) for n, v in spec.variables.items()})
        self.generation = adapter.port.generation  # the process that holds this session
        weakref.finalize(self, adapter.to_close.append, sid)

    def _request(self, op: str, **fields: Any) -> dict:
        port = self.adapter.port
        if self.generation is not None and (port.proc is None or port.generation != self.generation):
            # Another session's failure stopped the process this one lived in (the other mode of the same item).
            raise PipeError(f"session {self.sid} was lost: the port's process was stopped after an earlier failure")
        return port.request(op, self.adapter.timeout, session=self.sid, **fields)

    def apply(self, grads: dict[str, Any], step: int) -> None:
        # The value each callable has at this call, read without calling it: the port's calls are not seen.
        values = {k: float(c.values[min(step, len(c.values) - 1)]) for k, c in self.callables.items()}
        # P-5: slots belong to a variable's name, never to its position in the call, so the names go out in an order
        # that turns with the step: a port (or a wrapped library) that binds slots by position fails at once.
        turn = step % len(self.names) if self.names else 0
        order = [n for n in self.names[turn:] + self.names[:turn] if n in grads] + [n for n in grads if n not in self.names]
        extra = {} if self.per_step is None else {"learning_rate": float(self.per_step.values[step])}
        self._request("apply", step=step, gradients={n: gradient(grads[n], self.dtype) for n in order},
                      callables=values, **extra)

    def read(self) -> dict:
        response = self._request("read")
        out: dict[str, Any] = {"iterations": response["iterations"]}
        for n in self.names:
            if n not in response["variables"]:
                raise PipeError(f"the port's response to 'read' (session {self.sid}) has no variable {n!r}")
            try:
                out[n] = {k: None if a is None else decode(a) for k, a in response["variables"][n].items()}
            except ValueError as exc:
                raise PipeError(f"the port's response to 'read' (session {self.sid}) at variables.{n}: {exc}") from None
            out[n].setdefault("vhat", None)
        return out

    def load(self, state: dict) -> None:
        variables = {n: {k: None if a is None else encode(a, self.dtype) for k, a in state[n].items()} for n in self.names}
        for v in variables.values():
            v.setdefault("m", None)
            v.setdefault("v", None)
        self._request("load", iterations=int(state["iterations"]), variables=variables)
