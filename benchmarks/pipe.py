"""Benchmark: what the pipe protocol costs per step and per element, against the same port in process.

    python benchmarks/pipe.py [COMMAND]        # default: the oracle served over the pipe (conformance.pipe_port)

For each size, 20 steps of ``apply`` + ``read`` (what trajectory mode does per step) on one float32
variable; the per-step time at one element is the fixed cost of a round trip, the slope over sizes the
cost per element (base64 and JSON both ways, three arrays read back per step).
"""

from __future__ import annotations

import shlex
import statistics
import sys
import time

import numpy as np

import reference
from conformance.adapters.numpy_port import NumpyPortAdapter
from conformance.adapters.pipe import PipeAdapter
from conformance.inputs import Clock, RunSpec

SIZES = (1, 1_000, 100_000, 1_000_000)
STEPS = 20
HYPER = {"learning_rate": 2.0**-7, "beta_1": 0.875, "beta_2": 1.0 - 2.0**-10, "epsilon": 2.0**-23}


def per_step(adapter, n: int) -> float:
    rng = np.random.default_rng(0)
    spec = RunSpec(hyper=dict(HYPER), amsgrad=False, defaults=False, dtype="float32",
                   variables={"a": rng.standard_normal(n)}, clock=Clock())
    session = adapter.start(spec)
    grads = [{"a": rng.standard_normal(n).astype(np.float32)} for _ in range(STEPS)]
    times = []
    for s, g in enumerate(grads):
        start = time.perf_counter()
        session.apply(g, s)
        session.read()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else f"{sys.executable} -m conformance.pipe_port"
    pipe = PipeAdapter(shlex.split(command))
    pipe.timeout = 600
    pipe.probe()
    direct = NumpyPortAdapter(reference.Adam)
    rows = [(n, per_step(pipe, n), per_step(direct, n)) for n in SIZES]
    print(f"{command}: median time per step (apply + read), float32, {STEPS} steps")
    for n, p, d in rows:
        print(f"  {n:>9} elements: pipe {p * 1e3:9.3f} ms, reference in process {d * 1e3:9.3f} ms")
    slope = (rows[-1][1] - rows[0][1]) / (rows[-1][0] - rows[0][0])
    print(f"  fixed cost per step {rows[0][1] * 1e3:.3f} ms; {slope * 1e9:.0f} ns per element")


if __name__ == "__main__":
    main()
