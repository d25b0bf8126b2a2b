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

#: ``--checkpoint`` rows: the vectors users' resumes hit, 10 items (a one-step vector restored before its step, every
#: dtype with float16 and bfloat16 slots and AMSGrad's vhat, mixed dtypes, slots made only by sparse gradients,
#: callables, decay): each item starts a fresh process, so the whole suite would take a CI worker too long.
CHECKPOINTED = ["-k", "((first-step or row-then-absent or amsgrad-duplicates or all-three or decay) and float32 or "
                      "all-four-amsgrad or mixed-dtypes) and not test_"]

#: file stem -> (candidate, extra pytest arguments, environment, module that must be importable).
#: Execution modes other than eager (``--execution``) sort right after their eager row ("2b-", "2c-", ...); the
#: distributed ones (``--world-size`` 2, ``--split`` even, the defaults) after the compiled ones.  The
#: training-loop rows (``fit``, ``fit-mixed``: every step a model.fit call) run the families where the loop can
#: change a step (``FIT_FAMILIES``), so that each stays within minutes on two cores.
KERAS3_COMPILED = ["-k", "not many-tensors-half"]
FIT_FAMILIES = ["-k", "discriminating or dtypes or tf2 or non-finite"]
FIT_MIXED_FAMILIES = ["-k", "discriminating or non-finite"]
RUNS = {
    "1-reference": ("reference:Adam", [], {}, "numpy"),
    "1b-tf1-train-adam": ("tensorflow.compat.v1.train:AdamOptimizer", [], {}, "tensorflow"),
    "2-tf_keras-legacy": ("tf_keras.optimizers.legacy:Adam", [], {}, "tf_keras"),
    "2b-tf_keras-legacy-function": ("tf_keras.optimizers.legacy:Adam", ["--execution=function"], {}, "tf_keras"),
    "2c-tf_keras-legacy-xla": ("tf_keras.optimizers.legacy:Adam", ["--execution=xla"], {}, "tf_keras"),
    # The mirrored rows leave the kernels family out (-k): its many-tensors vector traces hundreds of variables per
    # replica and takes minutes under a strategy on two cores.
    "2d-tf_keras-legacy-mirrored": ("tf_keras.optimizers.legacy:Adam", ["--execution=mirrored", "-k", "not kernels"], {},
                                    "tf_keras"),
    "2e-tf_keras-legacy-mirrored-function": ("tf_keras.optimizers.legacy:Adam",
                                             ["--execution=mirrored-function", "-k", "not kernels"], {}, "tf_keras"),
    "2f-tf_keras-legacy-fit": ("tf_keras.optimizers.legacy:Adam", ["--execution=fit", *FIT_FAMILIES], {}, "tf_keras"),
    "2g-tf_keras-legacy-fit-mixed": ("tf_keras.optimizers.legacy:Adam", ["--execution=fit-mixed", *FIT_MIXED_FAMILIES],
                                     {}, "tf_keras"),
    # Clipping in apply_gradients (the opt-in level later, ADAM-CLIP-APPLY-1: the clipping family alone), on one
    # device and under both strategies, where it must apply to the aggregated gradient (ADAM-TF2-DIST-1).
    "2h-tf_keras-legacy-clipping": ("tf_keras.optimizers.legacy:Adam", ["--level=later"], {}, "tf_keras"),
    "2o-tf_keras-legacy-mirrored-clipping": ("tf_keras.optimizers.legacy:Adam", ["--execution=mirrored", "--level=later"],
                                             {}, "tf_keras"),
    "2p-tf_keras-legacy-multiworker-clipping": ("tf_keras.optimizers.legacy:Adam",
                                                ["--execution=multiworker", "--level=later"], {}, "tf_keras"),
    "2k-tf_keras-legacy-checkpoint": ("tf_keras.optimizers.legacy:Adam", ["--checkpoint", *CHECKPOINTED], {}, "tf_keras"),
    "2l-tf_keras-legacy-checkpoint-model-h5": ("tf_keras.optimizers.legacy:Adam", ["--checkpoint=model-h5", *CHECKPOINTED], {},
                                       "tf_keras"),
    "2l-tf_keras-legacy-checkpoint-model-savedmodel": ("tf_keras.optimizers.legacy:Adam", ["--checkpoint=model-savedmodel", *CHECKPOINTED], {},
                                       "tf_keras"),
    "2l-tf_keras-legacy-checkpoint-model-keras": ("tf_keras.optimizers.legacy:Adam", ["--checkpoint=model-keras", *CHECKPOINTED], {},
                                       "tf_keras"),
    "2l-tf_keras-legacy-checkpoint-weights-tf": ("tf_keras.optimizers.legacy:Adam", ["--checkpoint=weights-tf", *CHECKPOINTED], {},
                                       "tf_keras"),
    "2l-tf_keras-legacy-checkpoint-weights-h5": ("tf_keras.optimizers.legacy:Adam", ["--checkpoint=weights-h5", *CHECKPOINTED], {},
                                       "tf_keras"),
    # TensorFlow's workers without the kernels family (minutes of eager collectives on 2 cores; its crash on an
    # empty variable is checked by tests/test_distributed_modes.py).
    "2m-tf_keras-legacy-multiworker": ("tf_keras.optimizers.legacy:Adam", ["--execution=multiworker", "-k",
                                                                          "not kernels"], {}, "tf_keras"),
    "2n-tf_keras-legacy-multiworker-function": ("tf_keras.optimizers.legacy:Adam", ["--execution=multiworker-function",
                                                                                   "-k", "not kernels"], {}, "tf_keras"),
    "3-tf.keras-keras3-tensorflow": ("tensorflow.keras.optimizers:Adam", [], {}, "tensorflow"),
    # Keras 3's compiled steps trace one step over every variable: kernels/many-tensors-half (128 half-precision
    # tensors) took past the 120 s per-item limit under tf.function on two busy cores (float32's took 74 s), so the
    # compiled Keras 3 rows leave it out (KERAS3_COMPILED); its eager rows run it.
    "3b-tf.keras-keras3-tensorflow-function": ("tensorflow.keras.optimizers:Adam",
                                               ["--execution=function", *KERAS3_COMPILED], {}, "tensorflow"),
    "3c-tf.keras-keras3-tensorflow-xla": ("tensorflow.keras.optimizers:Adam", ["--execution=xla", *KERAS3_COMPILED], {},
                                          "tensorflow"),
    "3d-tf.keras-keras3-tensorflow-mirrored": ("tensorflow.keras.optimizers:Adam",
                                               ["--execution=mirrored", "-k", "not kernels"], {}, "tensorflow"),
    # The sparse split as a row: the whole gradient on replica 0, so no index arrives from both replicas.
    "3e-tf.keras-keras3-tensorflow-mirrored-one-rank": ("tensorflow.keras.optimizers:Adam",
                                                        ["--execution=mirrored", "--split=one-rank", "-k", "sparse"], {},
                                                        "tensorflow"),
    # Keras 3 on TensorFlow's workers, by the tf_keras adapter's mechanism, without the kernels family like 2m.
    "3m-tf.keras-keras3-tensorflow-multiworker": ("tensorflow.keras.optimizers:Adam",
                                                  ["--execution=multiworker", "-k", "not kernels"], {}, "tensorflow"),
    "3n-tf.keras-keras3-tensorflow-multiworker-function": ("tensorflow.keras.optimizers:Adam",
                                                           ["--execution=multiworker-function", "-k", "not kernels"],
                                                           {}, "tensorflow"),
    "3h-tf.keras-keras3-tensorflow-clipping": ("tensorflow.keras.optimizers:Adam", ["--level=later"], {}, "tensorflow"),
    "3o-tf.keras-keras3-tensorflow-mirrored-clipping": ("tensorflow.keras.optimizers:Adam",
                                                        ["--execution=mirrored", "--level=later"], {}, "tensorflow"),
    "3p-tf.keras-keras3-tensorflow-multiworker-clipping": ("tensorflow.keras.optimizers:Adam",
                                                           ["--execution=multiworker", "--level=later"], {}, "tensorflow"),
    "3f-tf.keras-keras3-tensorflow-fit": ("tensorflow.keras.optimizers:Adam", ["--execution=fit", *FIT_FAMILIES], {},
                                          "tensorflow"),
    "3g-tf.keras-keras3-tensorflow-fit-mixed": ("tensorflow.keras.optimizers:Adam",
                                                ["--execution=fit-mixed", *FIT_MIXED_FAMILIES], {}, "tensorflow"),
    "3k-tf.keras-keras3-tensorflow-checkpoint": ("tensorflow.keras.optimizers:Adam", ["--checkpoint", *CHECKPOINTED], {},
                                                 "tensorflow"),
    "3l-tf.keras-keras3-tensorflow-checkpoint-tf": ("tensorflow.keras.optimizers:Adam",
                                                    ["--checkpoint=checkpoint", *CHECKPOINTED], {}, "tensorflow"),
    "3l-tf.keras-keras3-tensorflow-checkpoint-model-keras": ("tensorflow.keras.optimizers:Adam",
                                                             ["--checkpoint=model.keras", *CHECKPOINTED], {}, "tensorflow"),
    "4-keras3-jax": ("keras.optimizers:Adam", [], {"KERAS_BACKEND": "jax"}, "jax"),
    "4b-keras3-jax-jit": ("keras.optimizers:Adam", ["--execution=jit", *KERAS3_COMPILED], {"KERAS_BACKEND": "jax"}, "jax"),
    "4c-keras3-jax-fit": ("keras.optimizers:Adam", ["--execution=fit", *FIT_FAMILIES], {"KERAS_BACKEND": "jax"}, "jax"),
    "4d-keras3-jax-fit-mixed": ("keras.optimizers:Adam", ["--execution=fit-mixed", *FIT_MIXED_FAMILIES],
                                {"KERAS_BACKEND": "jax"}, "jax"),
    "4k-keras3-jax-checkpoint": ("keras.optimizers:Adam", ["--checkpoint", *CHECKPOINTED], {"KERAS_BACKEND": "jax"}, "jax"),
    "4l-keras3-jax-checkpoint-model-keras": ("keras.optimizers:Adam", ["--checkpoint=model.keras", *CHECKPOINTED],
                                             {"KERAS_BACKEND": "jax"}, "jax"),
    "5-keras3-torch": ("keras.optimizers:Adam", [], {"KERAS_BACKEND": "torch"}, "torch"),
    "5b-keras3-torch-compile": ("keras.optimizers:Adam", ["--execution=compile", *KERAS3_COMPILED],
                                {"KERAS_BACKEND": "torch"}, "torch"),
    "5c-keras3-torch-fit": ("keras.optimizers:Adam", ["--execution=fit", *FIT_FAMILIES], {"KERAS_BACKEND": "torch"},
                            "torch"),
    "5d-keras3-torch-fit-mixed": ("keras.optimizers:Adam", ["--execution=fit-mixed", *FIT_MIXED_FAMILIES],
                                  {"KERAS_BACKEND": "torch"}, "torch"),
    "5k-keras3-torch-checkpoint": ("keras.optimizers:Adam", ["--checkpoint", *CHECKPOINTED], {"KERAS_BACKEND": "torch"},
                                   "torch"),
    "5l-keras3-torch-checkpoint-model-keras": ("keras.optimizers:Adam", ["--checkpoint=model.keras", *CHECKPOINTED],
                                               {"KERAS_BACKEND": "torch"}, "torch"),
    "6-torch": ("torch.optim:Adam", [], {}, "torch"),
    "6b-torch-foreach": ("torch.optim:Adam", ["--execution=foreach"], {}, "torch"),
    "6c-torch-fused": ("torch.optim:Adam", ["--execution=fused"], {}, "torch"),
    "6d-torch-compile": ("torch.optim:Adam", ["--execution=compile"], {}, "torch"),
    "6k-torch-checkpoint": ("torch.optim:Adam", ["--checkpoint", *CHECKPOINTED], {}, "torch"),
    "6l-torch-foreach-checkpoint": ("torch.optim:Adam", ["--execution=foreach", "--checkpoint", *CHECKPOINTED], {}, "torch"),
    "6m-torch-fused-checkpoint": ("torch.optim:Adam", ["--execution=fused", "--checkpoint", *CHECKPOINTED], {}, "torch"),
    "6n-torch-fused-checkpoint-to-foreach": ("torch.optim:Adam", ["--execution=fused", "--checkpoint=state_dict-to-foreach",
                                                                  *CHECKPOINTED], {}, "torch"),
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
    "8c-optax-adam-sharded": ("optax:adam", ["--execution=sharded"], {}, "optax"),
    "8d-optax-adam-pmap": ("optax:adam", ["--execution=pmap", "-k", "not kernels"], {}, "optax"),
    "8k-optax-adam-checkpoint": ("optax:adam", ["--checkpoint", *CHECKPOINTED], {}, "optax"),
    "8l-optax-adam-checkpoint-orbax": ("optax:adam", ["--checkpoint=orbax", *CHECKPOINTED], {}, "optax"),
    "9-optax-amsgrad": ("optax:amsgrad", [], {}, "optax"),
    "9b-optax-amsgrad-jit": ("optax:amsgrad", ["--execution=jit"], {}, "optax"),
    "9c-optax-amsgrad-raw": ("optax:amsgrad", ["--raw"], {}, "optax"),
    "9k-optax-amsgrad-checkpoint": ("optax:amsgrad", ["--checkpoint", *CHECKPOINTED], {}, "optax"),
}


#: Rows that the slow tier runs on a few items only (a ``-k`` expression within the row's own selection), compared
#: item by item with the committed summary, which ``python -m tests.real_runs`` makes from the whole row: a
#: distributed, resumed or training-loop row starts processes, strategies or ``model.fit`` calls for every item,
#: and the whole of each would take CI minutes.  Each selection takes what the mode changes: dense, sparse with
#: duplicates, variables that come and go, the kernels' shapes, a skipped step.
_SPREAD = "dense/basic or sparse/duplicate-pair or multivariable/left-out"  # replicas: dense, duplicates, a variable out
_RANKS = "dense/basic or sparse/duplicate-pair or kernels/widths or multivariable/late-variable"
_FIT = "discriminating/epsilon-1 or dtypes/all-four or non-finite"
_RESUMED = "((first-step or row-then-absent) and float32 or all-four-amsgrad and bfloat16) and not test_"
CI_SELECTION: dict[str, str] = {
    "2d-tf_keras-legacy-mirrored": _SPREAD, "2e-tf_keras-legacy-mirrored-function": _SPREAD,
    "3d-tf.keras-keras3-tensorflow-mirrored": _SPREAD, "3e-tf.keras-keras3-tensorflow-mirrored-one-rank": "duplicate-pair",
    "2m-tf_keras-legacy-multiworker": "dense/basic or sparse/duplicate-pair",
    "2n-tf_keras-legacy-multiworker-function": "dense/basic or sparse/duplicate-pair",
    "3m-tf.keras-keras3-tensorflow-multiworker": "dense/basic or sparse/duplicate-pair",
    "3n-tf.keras-keras3-tensorflow-multiworker-function": "dense/basic or sparse/duplicate-pair",
    **{stem: _RANKS for stem in ("6e-torch-ddp", "6f-torch-ddp-foreach", "6g-torch-ddp-fused", "6h-torch-zero",
                                 "6i-torch-zero-foreach", "6j-torch-zero-fused", "6o-torch-fsdp2",
                                 "6p-torch-fsdp2-foreach", "6q-torch-fsdp2-fused")},
    "8c-optax-adam-sharded": "dense/basic or kernels/widths or multivariable/two-shapes",
    "8d-optax-adam-pmap": "dense/basic or multivariable/two-shapes",
    **{stem: _FIT for stem in ("2f-tf_keras-legacy-fit", "3f-tf.keras-keras3-tensorflow-fit", "4c-keras3-jax-fit",
                               "5c-keras3-torch-fit")},
    **{stem: "discriminating/epsilon-1 or non-finite" for stem in (
        "2g-tf_keras-legacy-fit-mixed", "3g-tf.keras-keras3-tensorflow-fit-mixed", "4d-keras3-jax-fit-mixed",
        "5d-keras3-torch-fit-mixed")},
    **{stem: _RESUMED for stem in ("2k-tf_keras-legacy-checkpoint", "3k-tf.keras-keras3-tensorflow-checkpoint",
                                   "3l-tf.keras-keras3-tensorflow-checkpoint-tf", "4k-keras3-jax-checkpoint",
                                   "5k-keras3-torch-checkpoint", "6k-torch-checkpoint", "6l-torch-foreach-checkpoint",
                                   "6m-torch-fused-checkpoint", "6n-torch-fused-checkpoint-to-foreach",
                                   "8k-optax-adam-checkpoint", "8l-optax-adam-checkpoint-orbax",
                                   "9k-optax-amsgrad-checkpoint",
                                   *(f"2l-tf_keras-legacy-checkpoint-{fmt}" for fmt in (
                                       "model-h5", "model-savedmodel", "model-keras", "weights-tf", "weights-h5")),
                                   "3l-tf.keras-keras3-tensorflow-checkpoint-model-keras",
                                   "4l-keras3-jax-checkpoint-model-keras", "5l-keras3-torch-checkpoint-model-keras")},
}


#: Rows the slow tier runs whole: the reference, TF 2.0's own code line (whose share of the bound is checked) and
#: torch's default step.  Every other row not in CI_SELECTION runs its ``sampled`` items.
WHOLE_IN_CI = ("1-reference", "2-tf_keras-legacy", "6-torch")
#: Items whose step takes seconds in the slower modes (hundreds of tensors, long vectors): a family's passing item
#: is taken from the others where it has any.
_HEAVY = ("many-tensors", "widths", "chunks")
RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"


def sampled(name: str) -> str:
    """The slow tier's items of a row outside CI_SELECTION and WHOLE_IN_CI, from its committed summary: every item
    that does not pass (its known divergences, failures and unsupported items, what the README's tables say of it)
    and one passing item per family, as a ``-k`` expression of item names."""
    results = json.loads((RESULTS / f"{name}.summary.json").read_text(encoding="utf-8"))["results"]
    names = {r["nodeid"].rsplit("::", 1)[1]: r for r in results}
    chosen = [n for n, r in names.items() if r["verdict"] != "pass"]
    for family in sorted({r["family"] for r in results}):
        passing = sorted(n for n, r in names.items() if r["family"] == family and r["verdict"] == "pass")
        light = [n for n in passing if not any(h in n for h in _HEAVY)]
        chosen += (light or passing)[:1]
    return " or ".join(sorted(chosen))


def ci_selection(name: str) -> str | None:
    """The ``-k`` expression the slow tier runs row ``name`` with (None: the whole row)."""
    if name in CI_SELECTION:
        return CI_SELECTION[name]
    return None if name in WHOLE_IN_CI else sampled(name)


def available(name: str) -> bool:
    return importlib.util.find_spec(RUNS[name][3]) is not None


def run(name: str, out: Path, cwd: Path, device: str = "cpu", select: str | None = None,
        cache: list[str] | None = None, diagnosis: bool = True) -> subprocess.CompletedProcess:
    """Run the suite against one real candidate on ``device``, writing its JSON results to ``out``; ``select``: a
    ``-k`` expression that replaces the row's own (the slow tier's ``ci_selection``); ``cache``: pytest options of a
    cache folder whose verified-vector cache lists the bundled files (``tests.helpers.warm_cache``), so that the run
    does not re-derive them through the oracle (by default no cache: every file is verified); ``diagnosis``: False
    where only the verdicts are read (the slow tier), so that known divergences cost no replays."""
    candidate, extra, env, _ = RUNS[name]
    if select is not None:
        extra = [a for i, a in enumerate(extra) if a != "-k" and (i == 0 or extra[i - 1] != "-k")] + ["-k", select]
    cmd = [sys.executable, "-m", "pytest", f"--candidate={candidate}", f"--conformance-json={out}", "-q",
           *(cache or ["-p", "no:cacheprovider"]), "-W", "ignore::DeprecationWarning", "--rootdir", str(cwd), *extra,
           f"--device={device}", *([] if diagnosis else ["--conformance-diagnosis=off"])]
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
