"""Process candidates that stumble where the pipe protocol once left a gap, one way per ``--gap``.

Otherwise each is the oracle served over the pipe (``conformance.pipe_port``):

- ``accepts-all-null``: answers ``ok`` to an ``apply`` whose gradients are all null (P-5 says ``error``);
- ``callables=NAME,...``: says in ``hello`` that only these hyperparameters may be callables (P-3's list form);
- ``positional``: a wrapped library that binds slots to a variable's position in the call, not to its name;
- ``global-names``: a wrapped library that keeps variables by name across the whole process;
- ``global-names-prefixed``: the same library, driven with names made unique by the session id (P-4);
- ``obeying-p4``: a driver that rounds hyperparameters to float32 and turns epsilon 0 into 1e-7 before handing
  them to the library it wraps, which hides the library's own behaviour;
- ``per-step-schedule``: a library without schedules (P-3 ``"schedule": "per-step"``): it refuses a schedule in
  ``create`` and sets the learning rate that an ``apply`` brings before that call's update, as a torch user sets
  a param group's ``lr``;
- ``per-step-ignored``: says ``"per-step"`` but keeps the learning rate it was created with;
- ``no-schedule``: says ``"schedule": false`` (a port without schedules that does not take per-step values).

    python tests/gap_ports.py --gap=positional [module:Class]
"""

from __future__ import annotations

import pkgutil
import sys
from typing import Any

import numpy as np

from conformance.pipe_port import Server, serve

GAPS = ("accepts-all-null", "callables", "positional", "global-names", "global-names-prefixed", "obeying-p4",
        "per-step-schedule", "per-step-ignored", "no-schedule")

#: The "library" of the global-names gaps: one variable per name for the whole process, as some libraries keep them.
LIBRARY_VARIABLES: dict[str, np.ndarray] = {}


class GapServer(Server):
    """The oracle's server with one gap."""

    def __init__(self, cls: Any, label: str, gap: str, callables: list[str]) -> None:
        super().__init__(cls, label)
        self.gap, self.callable_names = gap, callables

    def hello(self, req: dict) -> dict:
        out = super().hello(req)
        if self.gap == "callables":
            out["supports"]["callables"] = self.callable_names
        if self.gap.startswith("per-step"):
            out["supports"]["schedule"] = "per-step"
        if self.gap == "no-schedule":
            out["supports"]["schedule"] = False
        return out

    def create(self, req: dict) -> dict:
        if self.gap == "obeying-p4" and req["hyperparameters"]:
            h = req["hyperparameters"]
            for name in ("learning_rate", "beta_1", "beta_2"):
                if isinstance(h[name], float | int):
                    h[name] = float(np.float32(h[name]))
            if isinstance(h["epsilon"], float | int) and not h["epsilon"]:
                h["epsilon"] = 1e-7
        lr = None
        if self.gap.startswith("per-step") and req["hyperparameters"]:
            lr = req["hyperparameters"]["learning_rate"]
            if isinstance(lr, dict) and "schedule" in lr:
                raise ValueError("this library has no schedules, and hello said so")
            if not isinstance(lr, dict):  # a number the library lets its user change between calls
                req["hyperparameters"]["learning_rate"] = {"callable": True}
        out = super().create(req)
        if isinstance(lr, float | int):
            self.sessions[req["session"]]["callables"]["learning_rate"].value = lr
        if self.gap.startswith("global-names"):
            s = self.sessions[req["session"]]
            for name, value in s["vars"].items():
                key = f"{req['session']}/{name}" if self.gap == "global-names-prefixed" else name
                LIBRARY_VARIABLES[key] = value
            s["vars"] = {name: LIBRARY_VARIABLES[f"{req['session']}/{name}" if self.gap == "global-names-prefixed"
                                                 else name] for name in s["vars"]}
        return out

    def apply(self, req: dict) -> dict:
        if self.gap == "per-step-schedule" and "learning_rate" in req:
            self.sessions[req["session"]]["callables"]["learning_rate"].value = req["learning_rate"]
        if self.gap == "accepts-all-null" and all(g is None for g in req["gradients"].values()):
            return {}  # silently: nothing updated, no error
        if self.gap.startswith("global-names"):
            # The library looks every variable up by name at each call: another session's "a" replaced this one's.
            s = self.sessions[req["session"]]
            prefix = f"{req['session']}/" if self.gap == "global-names-prefixed" else ""
            s["vars"] = {name: LIBRARY_VARIABLES[prefix + name] for name in s["vars"]}
        if self.gap == "positional":
            # Slots bound to the position in the call: the i-th gradient always updates the i-th variable created.
            s = self.sessions[req["session"]]
            names = list(s["vars"])
            req = {**req, "gradients": {names[i]: g for i, g in enumerate(req["gradients"].values())}}
        return super().apply(req)


def main(argv: list[str]) -> int:
    gap, _, names = argv[0].removeprefix("--gap=").partition("=")
    assert gap in GAPS, gap
    label = argv[1] if len(argv) > 1 else "reference:Adam"
    return serve(GapServer(pkgutil.resolve_name(label), f"{label} (gap {gap})", gap, names.split(",") if names else []))

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
