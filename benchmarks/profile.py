"""Benchmark: the deviation profile of ports with many failing items, in the same run.

    python benchmarks/profile.py [CANDIDATE ...] [-n WORKERS]

Runs ``pytest --candidate=CANDIDATE`` (default: the ports of ``tests/profile_ports.py`` that stack deviations) in a
scratch folder and reads its JSON: the failing items, the time the diagnosis took over all of them (every replay
of every item), the time of the whole run, and the time to choose the profile from the items' records.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PORTS = ["tests.profile_ports:TorchLike", "tests.profile_ports:Float32Everywhere"]


def measure(candidate: str, workers: str) -> dict:
    """One run of the suite against ``candidate``: items, diagnosis seconds, wall seconds, profile seconds."""
    from conformance.diagnosis.profile import build

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pytest", f"--candidate={candidate}", f"--conformance-json={out}", "-q",
                        "-p", "no:cacheprovider", "-n", workers, "--rootdir", tmp], cwd=tmp, capture_output=True,
                       env={"PYTHONPATH": str(ROOT), **__import__("os").environ})
        wall = time.perf_counter() - start
        doc = json.loads(out.read_text())
    start = time.perf_counter()
    profile = build(doc["results"])
    chosen = time.perf_counter() - start
    failing = [r for r in doc["results"] if r["verdict"] == "fail" and r.get("diagnosis")]
    return {"candidate": candidate, "failing_items": len(failing),
            "diagnosis_s": round(sum(r["diagnosis"]["seconds"] for r in failing), 1), "run_s": round(wall, 1),
            "profile_ms": round(1000 * chosen, 2), "profile": [d["name"] for d in profile["deviations"]],
            "unexplained": len(profile["unexplained"])}


if __name__ == "__main__":
    args = sys.argv[1:]
    workers = args[args.index("-n") + 1] if "-n" in args else "0"
    names = [a for i, a in enumerate(args) if a != "-n" and (i == 0 or args[i - 1] != "-n")] or PORTS
    for name in names:
        print(json.dumps(measure(name, workers)), flush=True)
