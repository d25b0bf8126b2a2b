"""The oracle as a process candidate: a NumPy port served over the pipe protocol (``spec/pipe-protocol.md``).

    pytest --candidate-command="python -m conformance.pipe_port"                    # reference:Adam
    pytest --candidate-command="python -m conformance.pipe_port reference.variants:Algorithm1Epsilon"

It shows that the pipe changes nothing: the verdicts and numbers are those of the same class in process.
Any class keeping the NumPy-port protocol can be served this way.
"""

from __future__ import annotations

import json
import pkgutil
import sys
from typing import Any

import numpy as np

import reference
from conformance.adapters.base import Batches, weights_in_spec_order
from conformance.adapters.pipe import PROTOCOL, decode, encode


class _Schedule(reference.LearningRateSchedule):
    def __init__(self, values: list[float]) -> None:
        self.values = values

    def __call__(self, step: int) -> float:
        return self.values[int(step)]


class _Callable:
    """A callable hyperparameter whose value the kit sends with every ``apply``."""

    def __init__(self) -> None:
        self.value = float("nan")

    def __call__(self) -> float:
        return self.value


class Server:
    """The sessions of one process, each a port instance with its named variables."""

    def __init__(self, cls: Any, label: str) -> None:
        self.cls, self.label = cls, label
        self.sessions: dict[int, dict[str, Any]] = {}

    def hello(self, req: dict) -> dict:
        return {"protocol": PROTOCOL, "name": f"conformance.pipe_port {self.label}", "version": "1",
                "supports": {"dtypes": ["float16", "bfloat16", "float32", "float64"], "amsgrad": True, "sparse": True,
                             "state_loading": True, "slots": ["m", "v", "vhat"], "iterations": True,
                             "callables": True, "schedule": True, "decay": True}}

    def create(self, req: dict) -> dict:
        callables: dict[str, _Callable] = {}
        kwargs: dict[str, Any] = {"amsgrad": req["amsgrad"]}
        for name, h in (req["hyperparameters"] or {}).items():
            if isinstance(h, dict) and "callable" in h:
                kwargs[name] = callables.setdefault(name, _Callable())
            elif isinstance(h, dict):
                kwargs[name] = _Schedule(h["schedule"])
            elif name != "decay" or h:
                kwargs[name] = h
        opt = self.cls(**kwargs) if req["hyperparameters"] else self.cls(amsgrad=req["amsgrad"])
        self.sessions[req["session"]] = {"opt": opt, "callables": callables, "dtype": req["dtype"],
                                         "vars": {n: decode(a) for n, a in req["variables"].items()}, "batches": Batches()}
        return {}

    def apply(self, req: dict) -> dict:
        s = self.sessions[req["session"]]
        for name, value in req["callables"].items():
            s["callables"][name].value = value
        pairs = []
        for name, g in req["gradients"].items():
            if isinstance(g, dict) and "indices" in g:
                g = reference.IndexedSlices(decode(g["values"]), np.array(g["indices"], dtype=np.int64), tuple(g["dense_shape"]))
            elif g is not None:
                g = decode(g)
            pairs.append((g, s["vars"][name]))
        s["opt"].apply_gradients(pairs)
        s["batches"].note({name: g for name, g in req["gradients"].items()})
        return {}

    def _slot(self, opt: Any, var: np.ndarray, name: str) -> Any:
        try:
            return np.array(opt.get_slot(var, name))
        except (KeyError, AttributeError, ValueError, NotImplementedError):
            return None

    def read(self, req: dict) -> dict:
        s = self.sessions[req["session"]]
        out = {}
        for n, var in s["vars"].items():
            slots = {k: self._slot(s["opt"], var, k) for k in ("m", "v", "vhat")}
            out[n] = {"variable": encode(var, s["dtype"]),
                      **{k: None if a is None else encode(a, s["dtype"]) for k, a in slots.items()}}
        return {"iterations": int(s["opt"].iterations), "variables": out}

    def load(self, req: dict) -> dict:
        s = self.sessions[req["session"]]
        if not hasattr(s["opt"], "set_weights"):
            raise NotImplementedError("the served class has no set_weights")
        state = {n: {k: None if a is None else decode(a) for k, a in v.items()} for n, v in req["variables"].items()}
        state["iterations"] = req["iterations"]
        # P-7: a slot given for a variable that has none yet (a fresh session, as a resumed run loads) is created
        # first, by a zero-gradient call (the variables are assigned below), so that set_weights finds it.
        new = [n for n, v in state.items() if n != "iterations" and v.get("m") is not None
               and n not in s["batches"].seen]
        if new:
            s["opt"].apply_gradients([(np.zeros_like(s["vars"][n]), s["vars"][n]) for n in new])
            s["batches"].note(dict.fromkeys(new, True))
        if s["batches"].seen:  # with no slot anywhere (nothing stepped yet) there is nothing for set_weights
            s["opt"].set_weights(weights_in_spec_order(state, s["batches"], s["opt"].amsgrad, lambda n, x: x))
        for n, var in s["vars"].items():
            var[...] = state[n]["variable"]
        return {}

    def close(self, req: dict) -> dict:
        self.sessions.pop(req["session"], None)
        return {}


def main(argv: list[str]) -> int:
    label = argv[0] if argv else "reference:Adam"
    return serve(Server(pkgutil.resolve_name(label), label))


def serve(server: Server) -> int:
    """Answer the requests on stdin, one JSON line each, until it closes (spec/pipe-protocol.md P-1)."""
    for line in sys.stdin:
        req = json.loads(line)
        try:
            response = {"status": "ok", **getattr(server, req["op"])(req)}
        except NotImplementedError as exc:
            response = {"status": "unsupported", "reason": str(exc) or "not implemented"}
        except Exception as exc:  # noqa: BLE001 - the port's failure is the answer
            response = {"status": "error", "message": f"{type(exc).__name__}: {exc}"}
        print(json.dumps({"id": req["id"], **response}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
