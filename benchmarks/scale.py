"""Benchmark: the large vectors (family `scale`): wall time, time inside the candidate, peak memory.

    python benchmarks/scale.py CANDIDATE [vector-id ...]
    python benchmarks/scale.py "command=node ports/js/adam.js" [vector-id ...]     # a process candidate
    python benchmarks/scale.py CANDIDATE scale/dense-1e8                 # the 10^8 vector runs only when named

Each item runs in a fresh process (both modes, as the plugin runs them).  "data" is the float64 size of
everything the vector describes: initial values, every step's gradients, and every step's expected
variable, m and v.  Peak memory is the process's peak resident size minus its size just before the item
(after the framework was imported and warmed up on a small vector); the process's own peak is shown too.
"""

from __future__ import annotations

import json
import subprocess
import sys

CHILD = r'''
import json, os, resource, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import pkgutil
from conformance import adapters
from conformance.loader import load_file, bundled_paths
from conformance.runner import run, MODES
spec, vid, dtype = sys.argv[1:4]
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
print(json.dumps({"vector": vid, "dtype": dtype, "elements": vector.size, "wall_s": wall,
                  "candidate_s": sum(o.candidate_seconds for o in outcomes), "passed": all(o.passed for o in outcomes),
                  "data_mib": data / 2**20, "peak_over_base_mib": (peak - base) / 2**20, "peak_mib": peak / 2**20}))
'''

ITEMS = [("scale/dense-1e6", "float32"), ("scale/dense-1e6", "float64"), ("scale/sparse-1e6", "float32"),
         ("scale/dense-1e7", "float32"), ("scale/dense-1e8", "float32")]
#: Run only when named on the command line.
ON_REQUEST = {"scale/dense-1e8"}


def main() -> None:
    spec = sys.argv[1]
    wanted = set(sys.argv[2:])
    for vid, dtype in ITEMS:
        if (wanted and vid not in wanted) or (not wanted and vid in ON_REQUEST):
            continue
        proc = subprocess.run([sys.executable, "-c", CHILD, spec, vid, dtype], capture_output=True, text=True)
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{vid} [{dtype}] {r['elements']:.0e} elements: {r['wall_s']:.2f} s, {r['candidate_s']:.2f} s inside the "
              f"candidate (kit's share {100 * (1 - r['candidate_s'] / r['wall_s']):.0f}%), peak +{r['peak_over_base_mib']:.0f} MiB "
              f"for {r['data_mib']:.0f} MiB of data ({r['peak_over_base_mib'] / r['data_mib']:.2f}x; process peak "
              f"{r['peak_mib'] / 1024:.2f} GiB), "
              f"{'pass' if r['passed'] else 'FAIL'}")


if __name__ == "__main__":
    main()
