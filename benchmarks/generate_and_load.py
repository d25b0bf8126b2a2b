"""Benchmark: `adam-conformance generate` for the whole set, and loading every vector (cold and cached).

    python benchmarks/generate_and_load.py [repeats]

Cold: every file is parsed, schema-checked and re-derived through the oracle.  Cached: the files were
verified by an earlier run of this kit (same bytes, same oracle), so they are only parsed.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from conformance.load.files import bundled_paths, load_file
from vectors import generate


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(repeats: int = 3) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        gen = [timed(lambda: generate.generate(Path(tmp))) for _ in range(repeats)]
    cold = [timed(lambda: [load_file(p) for p in bundled_paths()]) for _ in range(repeats)]
    verified: set[str] = set()
    for p in bundled_paths():
        load_file(p, verified)
    warm = [timed(lambda: [load_file(p, verified) for p in bundled_paths()]) for _ in range(repeats)]
    n = sum(len(load_file(p)[0]) for p in bundled_paths())
    print(f"generate, all {len(generate.scenarios.FAMILIES)} families: median {statistics.median(gen):.2f} s "
          f"(min {min(gen):.2f}, max {max(gen):.2f})")
    print(f"load all {n} vectors, cold:   median {statistics.median(cold):.3f} s (min {min(cold):.3f}, max {max(cold):.3f})")
    print(f"load all {n} vectors, cached: median {statistics.median(warm):.3f} s (min {min(warm):.3f}, max {max(warm):.3f})")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
