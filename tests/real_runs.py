"""The real candidates the kit is run against, and how; ``python -m tests.real_runs docs/results`` rewrites their results.

Each run writes its full results document to ``results/real-runs/STEM.json`` (not committed; ``--full=DIR``
puts it elsewhere) and its summary (``conformance/report/summary.py``) to ``docs/results/STEM.summary.json``.
The README's tables are built from the summaries (``adam-conformance matrix docs/results/*.summary.json``),
and ``tests/test_real_candidates.py`` checks that a fresh run still gives the verdicts they record.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

#: file stem -> (candidate, extra pytest arguments, environment, module that must be importable).
#: Execution modes other than eager (``--execution``) sort right after their eager row ("2b-", "2c-", ...); the
#: distributed ones (``--world-size`` 2, ``--split`` even, the defaults) after the compiled ones (torch's FSDP2 rows
#: at 6o-6q, after main's checkpoint rows 6k-6n).
RUNS = {
    "1-reference": ("reference:Adam", [], {}, "numpy"),
    "2-tf_keras-legacy": ("tf_keras.optimizers.legacy:Adam", [], {}, "tf_keras"),
    "2b-tf_keras-legacy-function": ("tf_keras.optimizers.legacy:Adam", ["--execution=function"], {}, "tf_keras"),
    "2c-tf_keras-legacy-xla": ("tf_keras.optimizers.legacy:Adam", ["--execution=xla"], {}, "tf_keras"),
    # TensorFlow's workers without the kernels family (minutes of eager collectives on 2 cores; its crash on an
    # empty variable is checked by tests/test_distributed_modes.py).
    "2m-tf_keras-legacy-multiworker": ("tf_keras.optimizers.legacy:Adam", ["--execution=multiworker", "-k",
                                                                          "not kernels"], {}, "tf_keras"),
    "2n-tf_keras-legacy-multiworker-function": ("tf_keras.optimizers.legacy:Adam", ["--execution=multiworker-function",
                                                                                   "-k", "not kernels"], {}, "tf_keras"),
    "3-tf.keras-keras3-tensorflow": ("tensorflow.keras.optimizers:Adam", [], {}, "tensorflow"),
    "3b-tf.keras-keras3-tensorflow-function": ("tensorflow.keras.optimizers:Adam", ["--execution=function"], {},
                                               "tensorflow"),
    "3c-tf.keras-keras3-tensorflow-xla": ("tensorflow.keras.optimizers:Adam", ["--execution=xla"], {}, "tensorflow"),
    "4-keras3-jax": ("keras.optimizers:Adam", [], {"KERAS_BACKEND": "jax"}, "jax"),
    "4b-keras3-jax-jit": ("keras.optimizers:Adam", ["--execution=jit"], {"KERAS_BACKEND": "jax"}, "jax"),
    "5-keras3-torch": ("keras.optimizers:Adam", [], {"KERAS_BACKEND": "torch"}, "torch"),
    "5b-keras3-torch-compile": ("keras.optimizers:Adam", ["--execution=compile"], {"KERAS_BACKEND": "torch"}, "torch"),
    "6-torch": ("torch.optim:Adam", [], {}, "torch"),
    "6b-torch-foreach": ("torch.optim:Adam", ["--execution=foreach"], {}, "torch"),
    "6c-torch-fused": ("torch.optim:Adam", ["--execution=fused"], {}, "torch"),
    "6d-torch-compile": ("torch.optim:Adam", ["--execution=compile"], {}, "torch"),
    "6e-torch-ddp": ("torch.optim:Adam", ["--execution=ddp"], {}, "torch"),
    "6f-torch-ddp-foreach": ("torch.optim:Adam", ["--execution=ddp-foreach"], {}, "torch"),
    "6g-torch-ddp-fused": ("torch.optim:Adam", ["--execution=ddp-fused"], {}, "torch"),
    "6h-torch-zero": ("torch.optim:Adam", ["--execution=zero"], {}, "torch"),
    "6i-torch-zero-foreach": ("torch.optim:Adam", ["--execution=zero-foreach"], {}, "torch"),
    "6j-torch-zero-fused": ("torch.optim:Adam", ["--execution=zero-fused"], {}, "torch"),
    "6o-torch-fsdp2": ("torch.optim:Adam", ["--execution=fsdp2"], {}, "torch"),
    "6p-torch-fsdp2-foreach": ("torch.optim:Adam", ["--execution=fsdp2-foreach"], {}, "torch"),
    "6q-torch-fsdp2-fused": ("torch.optim:Adam", ["--execution=fsdp2-fused"], {}, "torch"),
    "7-torch-raw": ("torch.optim:Adam", ["--raw"], {}, "torch"),
    "8-optax-adam": ("optax:adam", [], {}, "optax"),
    "8b-optax-adam-jit": ("optax:adam", ["--execution=jit"], {}, "optax"),
    "9-optax-amsgrad": ("optax:amsgrad", [], {}, "optax"),
    "9b-optax-amsgrad-jit": ("optax:amsgrad", ["--execution=jit"], {}, "optax"),
    "9c-optax-amsgrad-raw": ("optax:amsgrad", ["--raw"], {}, "optax"),
}


def available(name: str) -> bool:
    return importlib.util.find_spec(RUNS[name][3]) is not None


def run(name: str, out: Path, cwd: Path, device: str = "cpu") -> subprocess.CompletedProcess:
    """Run the suite against one real candidate on ``device``, writing its JSON results to ``out``."""
    candidate, extra, env, _ = RUNS[name]
    cmd = [sys.executable, "-m", "pytest", f"--candidate={candidate}", f"--conformance-json={out}", "-q",
           "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning", "--rootdir", str(cwd), *extra,
           f"--device={device}"]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env={**os.environ, **env})


def verdicts(path: Path) -> dict[str, str]:
    """nodeid -> verdict of a results file, full or summary."""
    return {r["nodeid"]: r["verdict"] for r in json.loads(path.read_text(encoding="utf-8"))["results"]}


if __name__ == "__main__":
    # python -m tests.real_runs FOLDER [--device=gpu] [--full=DIR] [STEM ...]: every run (or the named ones), two at
    # a time; FOLDER gets STEM.summary.json, DIR (default results/real-runs) the full STEM.json; on a GPU both
    # are named gpu-STEM.
    from concurrent.futures import ThreadPoolExecutor

    from conformance.report import summary

    folder = Path(sys.argv[1])
    options = dict(a[2:].split("=", 1) for a in sys.argv[2:] if a.startswith("--") and "=" in a)
    device = options.get("device", "cpu")
    full = Path(options.get("full", "results/real-runs")).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    full.mkdir(parents=True, exist_ok=True)
    stems = [a for a in sys.argv[2:] if not a.startswith("--")] or list(RUNS)

    def one(stem: str) -> str:
        name = f"gpu-{stem}" if device == "gpu" else stem
        out = full / f"{name}.json"
        out.unlink(missing_ok=True)  # a run that writes nothing leaves the committed summary as it was
        proc = run(stem, out, full, device)
        if out.is_file():
            summary.write(folder / f"{name}.summary.json", json.loads(out.read_text(encoding="utf-8")))
        return f"{stem} exit {proc.returncode} " + (proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-300:])

    with ThreadPoolExecutor(max_workers=2) as pool:
        for line in pool.map(one, stems):
            print(line, flush=True)
