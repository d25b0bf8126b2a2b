"""A process candidate that breaks the pipe protocol on sparse gradients, one way per ``--fault``.

Otherwise it is the oracle (``conformance.pipe_port``): dense items pass, sparse ones must fail with one line.
"""

from __future__ import annotations

import json
import sys
import threading

import reference
from conformance.pipe_port import Server

FAULTS = ("crash", "hang", "garbage", "schema", "wrong-id", "error", "unsupported", "stdout-noise")


def main() -> int:
    fault = sys.argv[1].removeprefix("--fault=")
    assert fault in FAULTS, fault
    server = Server(reference.Adam, f"hostile {fault}")
    for line in sys.stdin:
        req = json.loads(line)
        sparse = req["op"] == "apply" and any(isinstance(g, dict) and "indices" in g for g in req["gradients"].values())
        if sparse:
            print(f"about to misbehave: {fault}", file=sys.stderr, flush=True)
            if fault == "crash":
                return 3
            if fault == "hang":
                threading.Event().wait()  # for good: the kit must kill it, whatever its limit
            if fault == "garbage":
                print("this is not json", flush=True)
                continue
            if fault == "schema":
                print(json.dumps({"id": req["id"], "status": "ok", "extra": 1}), flush=True)
                continue
            if fault == "wrong-id":
                print(json.dumps({"id": req["id"] + 7, "status": "ok"}), flush=True)
                continue
            if fault == "error":
                print(json.dumps({"id": req["id"], "status": "error", "message": "sparse rows out of range"}), flush=True)
                continue
            if fault == "unsupported":
                print(json.dumps({"id": req["id"], "status": "unsupported", "reason": "no sparse kernel"}), flush=True)
                continue
            if fault == "stdout-noise":
                print("debug: applying sparse", flush=True)
        response = {"status": "ok", **getattr(server, req["op"])(req)}
        print(json.dumps({"id": req["id"], **response}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
