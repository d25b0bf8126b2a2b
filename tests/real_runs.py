"""The real candidates the kit is run against, and how; ``python -m tests.real_runs docs/results`` rewrites their results.

The README's conformance matrix is built from those files (``adam-conformance matrix docs/results/*.json``),
and ``tests/test_real_candidates.py`` checks that a fresh run still gives the same verdicts.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

#: file stem -> (candidate, extra pytest arguments, environment, module that must be importable)
RUNS = {
    "1-reference": ("reference:Adam", [], {}, "numpy"),
    "2-tf_keras-legacy": ("tf_keras.optimizers.legacy:Adam", [], {}, "tf_keras"),
    "3-tf.keras-keras3-tensorflow": ("tensorflow.keras.optimizers:Adam", [], {}, "tensorflow"),
    "4-keras3-jax": ("keras.optimizers:Adam", [], {"KERAS_BACKEND": "jax"}, "jax"),
    "5-keras3-torch": ("keras.optimizers:Adam", [], {"KERAS_BACKEND": "torch"}, "torch"),
    "6-torch": ("torch.optim:Adam", [], {}, "torch"),
    "7-torch-raw": ("torch.optim:Adam", ["--raw"], {}, "torch"),
    "8-optax-adam": ("optax:adam", [], {}, "optax"),
    "9-optax-amsgrad": ("optax:amsgrad", [], {}, "optax"),
}


def available(name: str) -> bool:
    return importlib.util.find_spec(RUNS[name][3]) is not None


def run(name: str, out: Path, cwd: Path) -> subprocess.CompletedProcess:
    """Run the suite against one real candidate, writing its JSON results to ``out``."""
    candidate, extra, env, _ = RUNS[name]
    cmd = [sys.executable, "-m", "pytest", f"--candidate={candidate}", f"--conformance-json={out}", "-q",
           "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning", "--rootdir", str(cwd), *extra]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env={**os.environ, **env})


def verdicts(path: Path) -> dict[str, str]:
    """nodeid -> verdict of a results file."""
    return {r["nodeid"]: r["verdict"] for r in json.loads(path.read_text(encoding="utf-8"))["results"]}


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    folder.mkdir(parents=True, exist_ok=True)
    for stem in RUNS:
        proc = run(stem, (folder / f"{stem}.json").resolve(), folder.resolve())
        print(stem, "exit", proc.returncode, proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-300:])
