"""Mutation testing of the kit: every wrong variant must fail something, every correct one must pass everything.

Each variant of ``reference/variants.py`` runs through the plugin, exactly as
a user's candidate would (vectors and API checks); the result is a kill
matrix saying which vector or check kills which mutant, and which vectors
kill nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from conformance.clauses import LEVELS
from reference import variants


def _run_one(name: str, workdir: Path) -> dict:
    out = workdir / f"{name}.json"
    # The matrix reads verdicts only: no diagnosis.  The runs share one pytest cache, so the vector files that one
    # run verified through the oracle are only parsed by the next (the verified-vector cache).
    cmd = [sys.executable, "-m", "pytest", f"--candidate=reference.variants:{name}", f"--conformance-json={out}",
           "--level=" + ",".join(LEVELS),  # every level, the opt-in later included: each kills some variant
           "--expectations=none", "--conformance-diagnosis=off", "-q", "-o", f"cache_dir={workdir / 'cache'}",
           "-p", "no:randomly", "--rootdir", str(workdir)]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    if not out.exists():
        raise RuntimeError(f"{name}: pytest wrote no results (exit {proc.returncode}): {proc.stderr.strip()[-300:]}")
    return json.loads(out.read_text(encoding="utf-8"))


def kill_matrix(jobs: int = 2) -> dict:
    """Run every variant; return {"mutants": {name: {...}}, "correct": {...}, "vectors_killing_nothing": [...]}."""
    names = [c.__name__ for c in variants.WRONG + variants.CORRECT]
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(max_workers=jobs) as pool:
        results = dict(zip(names, pool.map(lambda n: _run_one(n, Path(tmp)), names)))
    matrix: dict = {"mutants": {}, "correct": {}}
    kills_by_item: dict[str, list[str]] = {}
    for cls in variants.WRONG + variants.CORRECT:
        doc = results[cls.__name__]
        failed = sorted({f"{r['vector']}[{r['dtype']}]" if r.get("dtype") else r["vector"]
                         for r in doc["results"] if r["verdict"] in ("fail", "error")})
        for r in doc["results"]:
            key = f"{r['vector']}[{r['dtype']}]" if r.get("dtype") else r["vector"]
            kills_by_item.setdefault(key, [])
            if key in failed and cls in variants.WRONG:
                kills_by_item[key].append(cls.__name__)
        clause = (cls.__doc__ or "").strip().split(":")[0]
        entry = {"clause": clause, "killed_by": failed, "summary": doc["summary"]}
        (matrix["mutants"] if cls in variants.WRONG else matrix["correct"])[cls.__name__] = entry
    matrix["kills_by_item"] = kills_by_item
    matrix["vectors_killing_nothing"] = sorted(k for k, v in kills_by_item.items() if not v and not k.startswith("api/"))
    matrix["survivors"] = sorted(n for n, e in matrix["mutants"].items() if not e["killed_by"])
    matrix["correct_failing"] = sorted(n for n, e in matrix["correct"].items() if e["killed_by"])
    return matrix
