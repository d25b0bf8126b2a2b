"""``--checkpoint``: the run saved at each vector's middle step, restored in a fresh process and resumed there, is
judged against the uninterrupted run (bit for bit) and the oracle; what did not survive the restore is named."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from conformance.checkpoint import cross_kernel, survived
from tests.helpers import ROOT, need

#: A one-step vector (saved before its step: a restore before the first step), a sparse one whose second variable
#: has slots only from sparse gradients, and a mixed-dtype one (float16 and bfloat16 slots): 5 items, a fresh process
#: (about 2 seconds) each.
SELECTED = "amsgrad/first-step or sparse/row-then-absent or kernels/mixed-dtypes"
#: The same in float32 alone: 3 items.
FLOAT32 = "(amsgrad/first-step or sparse/row-then-absent) and float32 or kernels/mixed-dtypes"


@pytest.fixture
def run(pytester, tmp_path, kit_cache):
    pytester.syspathinsert(ROOT)

    def _run(candidate, *args, select=SELECTED):
        out = tmp_path / "r.json"
        out.unlink(missing_ok=True)
        # The API checks stay out: they run in this process, and CrashesOnLoad's set_weights would end it.
        given = f"--candidate-command={candidate}" if " " in candidate else f"--candidate={candidate}"
        result = pytester.runpytest(*kit_cache, given, f"--conformance-json={out}", "-k",
                                    f"({select}) and not test_", *args)
        return result, json.loads(out.read_text()) if out.exists() else None

    return _run


def _verdicts(doc: dict) -> dict[str, str]:
    return {f"{r['vector']}[{r['dtype']}]": r["verdict"] for r in doc["results"] if r["family"] != "api"}


def test_a_port_whose_state_survives_passes(run):
    result, doc = run("tests.checkpoint_ports:Survives", "--checkpoint")
    assert result.ret == 0, result.stdout.str()[-3000:]
    assert set(_verdicts(doc).values()) == {"pass"} and len(_verdicts(doc)) == 5
    assert doc["mode"] == "trajectory"
    assert doc["checkpoint"]["format"] == "state" and doc["checkpoint"]["twin_binding"] is True
    result.stdout.fnmatch_lines(["*checkpoint state (*): saved after half of each vector's steps*judged in trajectory "
                                 "mode against the oracle; the uninterrupted run must be reproduced bit for bit*"])


def test_a_port_whose_state_loading_drops_iterations_fails_named(run):
    result, doc = run("tests.checkpoint_ports:DropsIterationsOnLoad", "--checkpoint", select=FLOAT32)
    assert result.ret == 1
    # Saved at the middle step (the one-step vector before its step: nothing to lose there).
    assert _verdicts(doc) == {"amsgrad/first-step[float32]": "pass", "sparse/row-then-absent[float32]": "fail",
                              "kernels/mixed-dtypes[mixed]": "fail"}
    messages = [r["message"] for r in doc["results"] if r["verdict"] == "fail"]
    assert all(re.search(r"raised ResumeError at step (\d): iterations did not survive the restore: 0 after loading, "
                         r"(\d) saved \(state, saved after step \2\)", m) for m in messages), messages


def test_a_pipe_port_resumes_in_a_new_process_of_its_own(run):
    """The oracle served over the pipe: the resumed half runs in a new port process, loaded with P-7's load."""
    result, doc = run(f"{sys.executable} -m conformance.pipe_port", "--checkpoint", select=FLOAT32)
    assert result.ret == 0, result.stdout.str()[-3000:]
    assert doc["checkpoint"]["format"] == "state"
    assert _verdicts(doc) == {"amsgrad/first-step[float32]": "pass", "sparse/row-then-absent[float32]": "pass",
                              "kernels/mixed-dtypes[mixed]": "unsupported"}  # a pipe session has one dtype


def test_a_resumed_run_that_rounds_differently_fails_though_within_the_bound(run):
    result, doc = run("tests.checkpoint_ports:RoundsDifferentlyAfterLoad", "--checkpoint",
                      select="dense/basic or dense/long-run")
    assert result.ret == 1
    failing = [r for r in doc["results"] if r["verdict"] == "fail"]
    assert failing, "KernelMomentForm after the restore must differ somewhere in the dense family"
    assert all("the uninterrupted run" in r["message"] and r["max_ratio"] <= 1.0 for r in failing), failing


def test_a_restore_that_crashes_its_process_fails_that_item_and_the_run_goes_on(run):
    result, doc = run("tests.checkpoint_ports:CrashesOnLoad", "--checkpoint", select=FLOAT32)
    verdicts = _verdicts(doc)
    assert verdicts["amsgrad/first-step[float32]"] == "pass"  # saved before any step: nothing to load
    crashed = [r for r in doc["results"] if r["verdict"] == "fail"]
    assert len(crashed) == 2 and all("the resumed process died: the candidate crashed the process: SIGSEGV" in r["message"]
                                     for r in crashed), crashed


@pytest.mark.parametrize("args,line", [
    (["--checkpoint=orbax"], "--checkpoint=orbax: the numpy adapter has no such format (it has: state)"),
    (["--checkpoint", "--isolate"], "--checkpoint runs the resumed half in a process of its own; drop --isolate"),
    (["--checkpoint", "--conformance-mode=single-step"], "--checkpoint: single-step mode loads the oracle's state *"),
])
def test_usage_errors_are_one_line(run, args, line):
    result, _ = run("tests.checkpoint_ports:Survives", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{line}"])
    assert "Traceback" not in result.stderr.str()


def test_an_expectation_scoped_to_a_format_names_what_that_format_loses(run, tmp_path):
    """``checkpoint: [state]`` entries mark the items the format loses as known divergences in that format's run
    (the run passes, the failures shown as expected) and are left out of a run without --checkpoint."""
    exp = tmp_path / "exp.yaml"
    exp.write_text("candidates: []\ndivergences:\n" + "".join(
        f"  - {{id: '{v}', checkpoint: [state], clause: ADAM-API-WEIGHTS-2, reason: 'drops iterations on load'}}\n"
        for v in ("sparse/row-then-absent", "kernels/mixed-dtypes")))
    result, doc = run("tests.checkpoint_ports:DropsIterationsOnLoad", "--checkpoint", f"--expectations={exp}",
                      select=FLOAT32)
    assert result.ret == 0, result.stdout.str()[-3000:]
    assert _verdicts(doc) == {"amsgrad/first-step[float32]": "pass", "sparse/row-then-absent[float32]": "xfail",
                              "kernels/mixed-dtypes[mixed]": "xfail"}
    # Not resumed (trajectory mode: the port's set_weights drops iterations too): the entries are left out.
    result, doc = run("tests.checkpoint_ports:DropsIterationsOnLoad", f"--expectations={exp}",
                      "--conformance-mode=trajectory", select=FLOAT32)
    assert result.ret == 0 and set(_verdicts(doc).values()) == {"pass"}, result.stdout.str()[-3000:]
    assert "drops iterations on load" not in result.stdout.str()


#: Each adapter's formats, in the order --checkpoint offers them (the first is the bare flag's), as its usage error
#: lists them; measured in a subprocess (TensorFlow, JAX and torch stay out of the test worker).
FORMATS = {
    "tf_keras": ("tf_keras.optimizers.legacy:Adam", {},
                 "checkpoint, model-h5, model-savedmodel, model-keras, weights-tf, weights-h5"),
    "keras3-jax": ("keras.optimizers:Adam", {"KERAS_BACKEND": "jax"}, "weights.h5, model.keras"),
    "optax": ("optax:adam", {}, "pickle, orbax"),
}


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_an_unknown_format_lists_the_adapters_formats(name, tmp_path):
    candidate, env, formats = FORMATS[name]
    need("tf_keras" if name == "tf_keras" else "jax")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--candidate={candidate}",
                           "--checkpoint=no-such-format", "--rootdir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env={**os.environ, **env})
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout[-2000:] + proc.stderr[-2000:]
    adapter = {"tf_keras": "tf_keras", "keras3-jax": "keras3"}.get(name, name)
    assert f"--checkpoint=no-such-format: the {adapter} adapter has no such format " \
           f"(it has: {formats})" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_survived_compares_bit_for_bit():
    saved = {"iterations": 2, "a": {"variable": np.array([0.0, 1.0], np.float32), "m": None}}
    assert survived(saved, {"iterations": 2, "a": {"variable": np.array([0.0, 1.0], np.float32), "m": None}}) is None
    assert survived(saved, {"iterations": 2, "a": {"variable": np.array([-0.0, 1.0], np.float32)}}).startswith(
        "a.variable did not survive the restore: 1 / 2 elements differ, at (0,) -0.0 after loading")
    assert "float64[2] after loading, float32[2] saved" in survived(saved, {"iterations": 2, "a": {
        "variable": np.array([0.0, 1.0])}})
    assert survived(saved, {"iterations": 0, "a": {"variable": None}}) == \
        "iterations did not survive the restore: 0 after loading, 2 saved"
    assert survived(saved, {"iterations": None, "a": {"m": np.zeros(2)}}) is None  # what is not shown is not judged


def test_a_cross_kernel_format_names_its_kernel():
    assert cross_kernel("state_dict-to-foreach") == "foreach" and cross_kernel("state_dict") is None


#: torch: an optimizer built with foreach=True loads a state_dict saved by a fused one; prints its group's flags.
TORCH_KERNEL_AFTER_LOAD = """
import json, torch
p = [torch.zeros(3, requires_grad=True)]
fused = torch.optim.Adam(p, fused=True)
p[0].grad = torch.ones(3)
fused.step()
q = [torch.zeros(3, requires_grad=True)]
foreach = torch.optim.Adam(q, foreach=True)
foreach.load_state_dict(fused.state_dict())
print(json.dumps({k: foreach.param_groups[0][k] for k in ("fused", "foreach")}))
"""


@pytest.mark.slow
def test_torch_load_state_dict_keeps_the_saved_kernel():
    """docs/checkpoint.md: the state_dict-to-foreach row resumes fused, since load_state_dict takes the saved group's
    fused=True over the foreach=True the new optimizer was built with."""
    need("torch")
    proc = subprocess.run([sys.executable, "-c", TORCH_KERNEL_AFTER_LOAD], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"fused": True, "foreach": None}


@pytest.mark.slow
def test_tf_keras_load_model_restarts_adam_from_savedmodel_and_keras_files():
    """docs/repro/tf_keras_load_model_resets_adam.py, as docs/checkpoint.md reports it (tensorflow#44670, tf-keras#70):
    h5 keeps Adam's state; SavedModel and .keras give back an optimizer that starts over (SavedModel's state comes back
    with load_weights after load_model, .keras's does not)."""
    need("tf_keras")
    proc = subprocess.run([sys.executable, str(ROOT / "docs" / "repro" / "tf_keras_load_model_resets_adam.py")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found == {"h5": {"iterations": 4, "same": True}, "h5 + load_weights": {"iterations": 4, "same": True},
                     "savedmodel": {"iterations": 1, "same": False},
                     "savedmodel + load_weights": {"iterations": 4, "same": True},
                     "keras": {"iterations": 1, "same": False}, "keras + load_weights": {"iterations": 1, "same": False}}


@pytest.mark.slow
def test_tf_keras_h5_cannot_read_back_a_bfloat16_model():
    """docs/repro/tf_keras_h5_bfloat16.py, as docs/checkpoint.md reports it (tf-keras#420, keras#17069): an h5 file
    of a bfloat16 model is written, and neither load_model nor load_weights reads it, whether Adam stepped or not."""
    need("tf_keras")
    proc = subprocess.run([sys.executable, str(ROOT / "docs" / "repro" / "tf_keras_h5_bfloat16.py")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    cannot = "ValueError: No cast function available."
    assert found == {f"{what}, {tag}": "ok" if what in ("model.save", "save_weights") else cannot
                     for tag in ("after a step", "no step")
                     for what in ("model.save", "load_model", "save_weights", "load_weights")}


@pytest.mark.slow
def test_keras3_load_weights_before_the_optimizer_is_built_drops_its_state():
    """docs/repro/keras3_load_weights_before_build.py, as docs/checkpoint.md reports it: no deferred restoration in
    Keras 3 (a warning, and the optimizer starts over); .keras and a built optimizer resume exactly."""
    need("jax")
    proc = subprocess.run([sys.executable, str(ROOT / "docs" / "repro" / "keras3_load_weights_before_build.py")],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "KERAS_BACKEND": "jax"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {
        "load_model .keras": {"iterations": 4, "same": True, "warned": False},
        "load_weights, optimizer not built": {"iterations": 1, "same": False, "warned": True},
        "load_weights, optimizer built": {"iterations": 4, "same": True, "warned": False}}


def test_a_feature_the_format_cannot_carry_makes_the_vector_unsupported():
    """``checkpoint_lacking``: tf_keras's model- formats rebuild the optimizer from its config, so a vector with a
    schedule is unsupported there, with the format named; the candidate's own reasons come first."""
    from types import SimpleNamespace

    from conformance.checkpoint import CheckpointAdapter
    from conformance.features import Feature

    inner = SimpleNamespace(name="stub", raw=False, device="cpu", execution="eager", absent={},
                            missing=lambda: {}, unsupported=lambda vector, dtype: None,
                            checkpoint_lacking=lambda fmt: {Feature.SCHEDULE: "rebuilt"} if fmt == "model-h5" else {})
    scheduled, plain = SimpleNamespace(features=[Feature.SCHEDULE]), SimpleNamespace(features=[])
    wrapped = CheckpointAdapter(inner, "model-h5", "stub:Adam", 10.0)
    assert wrapped.unsupported(scheduled, "float32") == "--checkpoint=model-h5: rebuilt"
    assert wrapped.unsupported(plain, "float32") is None and wrapped.missing() == {Feature.SCHEDULE: "rebuilt"}
    assert CheckpointAdapter(inner, "weights-tf", "stub:Adam", 10.0).unsupported(scheduled, "float32") is None
    inner.unsupported = lambda vector, dtype: "its own reason"
    assert wrapped.unsupported(scheduled, "float32") == "its own reason"
