"""Benchmark: the default suite against a candidate, and the split of time between the candidate and the kit.

    python benchmarks/suite.py CANDIDATE [repeats] [pytest options...]

Runs ``pytest --candidate=CANDIDATE`` in a scratch folder (twice before measuring, so the verified-vector
cache is warm, as on any second run) and reads the timing the plugin writes into its JSON results: the
time from the start of collection to the end of the last item, the time spent inside the candidate
(building it, stepping, loading and reading state; an API check counts whole), and the kit's share.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def run_once(candidate: str, folder: Path, extra: list[str]) -> dict:
    out = folder / "results.json"
    subprocess.run([sys.executable, "-m", "pytest", f"--candidate={candidate}", f"--conformance-json={out}", "-q",
                    "--rootdir", str(folder), *extra], cwd=folder, capture_output=True, text=True)
    return json.loads(out.read_text())["timing"]


def main() -> None:
    candidate = sys.argv[1]
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    extra = sys.argv[3:]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        run_once(candidate, folder, extra)  # warm: the verified-vector cache
        runs = [run_once(candidate, folder, extra) for _ in range(repeats)]
    share = [100 * (1 - r["candidate_s"] / r["total_s"]) for r in runs]
    total = [r["total_s"] for r in runs]
    print(f"{candidate} {' '.join(extra)}: run {statistics.median(total):.2f} s median "
          f"(collection {statistics.median(r['collection_s'] for r in runs):.2f} s), "
          f"inside the candidate {statistics.median(r['candidate_s'] for r in runs):.2f} s, "
          f"kit's share {statistics.median(share):.0f}% (min {min(share):.0f}%, max {max(share):.0f}%)")


if __name__ == "__main__":
    main()
