"""Benchmark: the large vectors (family `scale`): wall time, time inside the candidate, peak memory.

    python benchmarks/scale.py CANDIDATE [vector-id ...] [--repeat=N] [--cold] [--verified]
    python benchmarks/scale.py "command=node ports/js/adam.js" [vector-id ...]     # a process candidate
    python benchmarks/scale.py CANDIDATE scale/dense-1e8                 # the 10^8 vector runs only when named

Each item runs in a fresh process (both modes, as the plugin runs them), after the framework was warmed up on a
small vector, and the kit's compiled kernels too (numba's import and first call, once per session: timed apart
and printed as "kit start-up"); ``--cold`` leaves the kit's kernels cold, so that the item pays for them.
``--verified`` runs the item as a session after the first does: its digests found to be the oracle's before
(the verified-vector cache), so that its states are not hashed.  ``--repeat=N`` runs each item N times and prints
the median share.  "data" is the float64 size of everything the
vector describes: initial values, every step's gradients, and every step's expected variable, m and v.  Peak
memory is the process's peak resident size minus its size just before the item; the process's own peak is shown
too.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

CHILD = r'''
import json, os, resource, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import pkgutil
import numpy as np
from conformance import adapters
from conformance.judge import compiled
from conformance.load.files import load_file, bundled_paths
from conformance.drive.runner import run, MODES
spec, vid, dtype, flags = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(",")
if spec.startswith("command="):  # a process candidate (spec/pipe-protocol.md)
    import shlex
    from conformance.adapters.pipe import PipeAdapter
    adapter = PipeAdapter(shlex.split(spec.removeprefix("command=")))
    adapter.probe()
else:
    adapter = adapters.load(adapters.choose(spec))(pkgutil.resolve_name(spec))
vector = [v for v in load_file([p for p in bundled_paths() if p.stem == "scale"][0])[0] if v.id == vid][0]
small = [v for v in load_file([p for p in bundled_paths() if p.stem == "dense"][0])[0] if v.id == "dense/basic"][0]
run(adapter, small, "float32", MODES)
start_up = None
if "verified" in flags:
    vector.mark_digests_verified()
if "cold" not in flags:  # what the first large item of a session pays once: numba's import and its first call
    start = time.perf_counter()
    compiled.same_in(np.zeros(1), np.zeros(1), dtype)
    start_up = time.perf_counter() - start
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
base = rss()
start = time.perf_counter()
outcomes = run(adapter, vector, dtype, MODES)
wall = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
steps = len(vector.steps)
data = 8 * vector.size * (1 + steps + 3 * steps)
print(json.dumps({"vector": vid, "dtype": dtype, "elements": vector.size, "wall_s": wall, "start_up_s": start_up,
                  "candidate_s": sum(o.candidate_seconds for o in outcomes), "passed": all(o.passed for o in outcomes),
                  "data_mib": data / 2**20, "peak_over_base_mib": (peak - base) / 2**20, "peak_mib": peak / 2**20}))
'''

ITEMS = [("scale/dense-1e6", "float32"), ("scale/dense-1e6", "float64"), ("scale/sparse-1e6", "float32"),
         ("scale/dense-1e7", "float32"), ("scale/dense-1e8", "float32")]
#: Run only when named on the command line.
ON_REQUEST = {"scale/dense-1e8"}


def main() -> None:
    spec = sys.argv[1]
    options = [a for a in sys.argv[2:] if a.startswith("--")]
    wanted = {a for a in sys.argv[2:] if not a.startswith("--")}
    repeat = next((int(a.split("=", 1)[1]) for a in options if a.startswith("--repeat=")), 1)
    flags = ",".join(f for f in ("cold", "verified") if f"--{f}" in options) or "-"
    for vid, dtype in ITEMS:
        if (wanted and vid not in wanted) or (not wanted and vid in ON_REQUEST):
            continue
        shares = []
        for _ in range(repeat):
            proc = subprocess.run([sys.executable, "-c", CHILD, spec, vid, dtype, flags], capture_output=True, text=True)
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            share = 100 * (1 - r["candidate_s"] / r["wall_s"])
            shares.append(share)
            start_up = "" if r["start_up_s"] is None else f"; kit start-up {r['start_up_s']:.2f} s before it"
            print(f"{vid} [{dtype}] {r['elements']:.0e} elements: {r['wall_s']:.2f} s, {r['candidate_s']:.2f} s inside the "
                  f"candidate (kit's share {share:.0f}%), peak +{r['peak_over_base_mib']:.0f} MiB "
                  f"for {r['data_mib']:.0f} MiB of data ({r['peak_over_base_mib'] / r['data_mib']:.2f}x; process peak "
                  f"{r['peak_mib'] / 1024:.2f} GiB), {'pass' if r['passed'] else 'FAIL'}{start_up}", flush=True)
        if repeat > 1:
            print(f"{vid} [{dtype}]: median kit's share {statistics.median(shares):.0f}% of {repeat} runs "
                  f"({min(shares):.0f}% to {max(shares):.0f}%)", flush=True)


if __name__ == "__main__":
    main()
