"""``adam-conformance repro``: the scripts it writes reproduce a divergence with NumPy and the candidate's library alone.

Every script runs in a process of its own where the kit cannot be imported (``NO_KIT`` blocks its packages, which
an editable install would otherwise make importable everywhere).  The three divergences the kit found in torch and
Keras 3 are reproduced (each script exits 1, printing expected and actual); the same scripts for a candidate that
conforms exit 0, so their expected values and bounds are honest; a passing item gets one line and no script.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from conformance import cli
from tests.helpers import ROOT, need

#: Runs a script (argv[1]) as ``__main__`` with the packages of argv[2] (comma-separated) unimportable.
NO_KIT = """
import importlib.abc, runpy, sys
blocked = set(sys.argv[2].split(","))

class NoKit(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            raise ImportError(f"{name}: the kit is not importable here")
        return None

sys.meta_path.insert(0, NoKit())
script = sys.argv[1]
sys.argv = [script]
runpy.run_path(script, run_name="__main__")
"""
KIT = "conformance,reference,vectors,spec,tests"


def write(tmp_path: Path, *args: str, backend: str | None = None) -> tuple[Any, Path]:
    """``adam-conformance repro ARGS -o SCRIPT``: in a process of its own when it imports a framework (``backend``,
    or a framework's candidate), here for a NumPy port (no framework is imported then)."""
    script = tmp_path / "repro.py"
    if not any(a.startswith(("--candidate=torch", "--candidate=keras", "--candidate=tf_keras", "--candidate=optax"))
               or a.endswith(".summary.json") for a in args):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = cli.main(["repro", *args, "-o", str(script)])
        return SimpleNamespace(returncode=status, stdout=out.getvalue(), stderr=err.getvalue()), script
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if backend:
        env["KERAS_BACKEND"] = backend
    proc = subprocess.run([sys.executable, "-m", "conformance.cli", "repro", *args, "-o", str(script)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    return proc, script


def run_script(script: Path, blocked: str = KIT, path: str | None = None) -> subprocess.CompletedProcess:
    """The script, from its own folder, with ``blocked`` unimportable; isolated (-I) unless ``path`` must be on
    sys.path (a candidate whose library is in this repository)."""
    flags, env = (["-I"], dict(os.environ)) if path is None else ([], {**os.environ, "PYTHONPATH": path})
    env.pop("KERAS_BACKEND", None)  # the script sets the backend it was measured on
    return subprocess.run([sys.executable, *flags, "-c", NO_KIT, str(script), blocked], cwd=script.parent, env=env,
                          capture_output=True, text=True, timeout=600)


def reproduces(tmp_path: Path, *args: str, backend: str | None = None) -> str:
    """Write the script, run it without the kit, check that it shows the divergence, and return its output."""
    proc, script = write(tmp_path, *args, backend=backend)
    assert proc.returncode == 0 and script.is_file(), proc.stdout + proc.stderr[-3000:]
    text = script.read_text(encoding="utf-8")
    assert "conformance" not in text.replace("adam-conformance", ""), "the script must not name the kit's packages"
    ran = run_script(script)
    assert ran.returncode == 1, ran.stdout + ran.stderr[-3000:]
    assert "DIFFERS from the expected values beyond the bound" in ran.stdout
    assert "expected" in ran.stdout and "actual" in ran.stdout and "worst:" in ran.stdout
    return ran.stdout


def conforms(tmp_path: Path, *args: str, backend: str | None = None, path: str | None = None,
             blocked: str = KIT) -> str:
    """Write the script for an item that passes (``--force``) and check that it exits 0."""
    proc, script = write(tmp_path, *args, "--force", backend=backend)
    assert proc.returncode == 0 and "passes: the script should exit 0" in proc.stdout, proc.stdout + proc.stderr[-3000:]
    ran = run_script(script, blocked, path)
    assert ran.returncode == 0, ran.stdout + ran.stderr[-3000:]
    assert "within the bound: no divergence" in ran.stdout
    return ran.stdout


# --- the three divergences, reproduced without the kit ------------------------------------------------------------


@pytest.mark.slow
def test_torch_fused_strided(tmp_path):
    """torch's CPU fused Adam walks a strided parameter as contiguous memory (expectations/torch.yaml,
    kernels/strided): the every-other-element vector's last three elements are wrong at step 1.  The same script with
    the default (per-tensor) implementation and with foreach exits 0."""
    need("torch")
    out = reproduces(tmp_path, "--candidate=torch.optim:Adam", "--execution=fused", "--vector=kernels/strided",
                     "--dtype=float32")
    # At step 1: the transposed matrix (its gradient in the same layout) is right, 3 of the vector's 7 elements not.
    assert "matrix (float32, shape (4, 5)): 0 of 20 elements out of bound" in out and "torch 2." in out
    assert "vector (float32, shape (7,)): 3 of 7 elements out of bound" in out
    assert all(f"  ({i},): expected" in out for i in (4, 5, 6))  # its last three
    for execution in ("eager", "foreach"):
        conforms(tmp_path, "--candidate=torch.optim:Adam", f"--execution={execution}", "--vector=kernels/strided",
                 "--dtype=float32")


@pytest.mark.slow
def test_torch_fused_strided_from_the_committed_results(tmp_path):
    """``--from`` takes candidate, execution and profile from a results summary: the committed fused row."""
    need("torch")
    summary = ROOT / "docs" / "results" / "6c-torch-fused.summary.json"
    out = reproduces(tmp_path, "--from", str(summary), "kernels/strided[float64]")
    assert "vector (float64, shape (7,)):" in out
    assert "--execution=fused" in (tmp_path / "repro.py").read_text(encoding="utf-8")


@pytest.mark.slow
def test_keras3_torch_alpha_in_the_first_variables_dtype(tmp_path):
    """Keras 3 on torch computes alpha in the dtype of the call's first variable (float16 here;
    expectations/keras3_jax_torch.yaml, kernels/mixed-dtypes): the float64 variable leaves its bound at step 2."""
    need("keras")
    need("torch")
    out = reproduces(tmp_path, "--candidate=keras.optimizers:Adam", "--vector=kernels/mixed-dtypes", "--dtype=mixed",
                     backend="torch")
    assert "backend torch" in out
    assert "h (float16, shape (33,)): 0 of 33" in out and "h2 (float16, shape (8,)): 0 of 8" in out  # alpha's own dtype
    for name in ("d (float64, shape (17,)): ", "s (float32, shape (2, 9)): ", "s2 (float32, shape (1025,)): "):
        line = next(line for line in out.splitlines() if line.startswith(name))
        assert not line.startswith(name + "0 of"), line  # moved by the float16 step size
    assert 'os.environ["KERAS_BACKEND"] = "torch"' in (tmp_path / "repro.py").read_text(encoding="utf-8")
    assert "step 2 of 3" in (tmp_path / "repro.py").read_text(encoding="utf-8")


@pytest.mark.slow
def test_keras3_squares_duplicate_sparse_indices(tmp_path):
    """Keras 3 (TensorFlow backend) squares each duplicate index's value before summing (expectations/keras3.yaml
    declares SquaredDuplicates in its profile; without it, sparse/duplicate-pair departs at step 1); with the
    suite's profile the item passes and repro says so in one line, writing nothing."""
    need("keras")
    need("tensorflow")
    out = reproduces(tmp_path, "--candidate=keras.optimizers:Adam", "--vector=sparse/duplicate-pair",
                     "--dtype=float32", "--profile=EpsilonZeroKept,HyperparametersNotCast", backend="tensorflow")
    assert "backend tensorflow" in out and "a (float32, shape (3,)): 1 of 3 elements out of bound" in out
    assert "  (1,): expected" in out and "step 1 of 2" in (tmp_path / "repro.py").read_text(encoding="utf-8")
    assert "tf.IndexedSlices" in (tmp_path / "repro.py").read_text(encoding="utf-8")
    (tmp_path / "repro.py").unlink()
    proc, script = write(tmp_path, "--candidate=keras.optimizers:Adam", "--vector=sparse/duplicate-pair",
                         "--dtype=float32", backend="tensorflow")
    assert proc.returncode == 1 and not script.exists()
    assert proc.stdout.strip().splitlines()[-1].endswith("nothing to reproduce (--force writes the script anyway)")


# --- honest scripts: a conforming candidate exits 0, a wrong one 1 ---------------------------------------------------


@pytest.mark.parametrize("vector,dtype", [("sparse/duplicate-pair", "float32"), ("dtypes/all-four", "bfloat16"),
                                          pytest.param("kernels/strided", "float32", marks=pytest.mark.slow),
                                          pytest.param("kernels/mixed-dtypes", "mixed", marks=pytest.mark.slow)])
def test_reference_scripts_pass(tmp_path, vector, dtype):
    """The oracle's own NumPy port conforms: its script exits 0 (the kit's reference package is the library here)."""
    conforms(tmp_path, "--candidate=reference:Adam", f"--vector={vector}", f"--dtype={dtype}",
             path=str(ROOT), blocked="conformance,vectors,spec,tests")


def test_a_wrong_port_fails_its_script(tmp_path):
    """A NumPy port without the (1 - beta_1) factor in m: the script shows it (exit 1) and names the worst element."""
    proc, script = write(tmp_path, "--candidate=tests.wrong_ports:UndampedMomentum", "--vector=sparse/duplicate-pair",
                         "--dtype=float64")
    assert proc.returncode == 0, proc.stderr
    ran = run_script(script, "conformance,vectors,spec", str(ROOT))
    assert ran.returncode == 1 and "DIFFERS" in ran.stdout and "worst: a[" in ran.stdout, ran.stdout + ran.stderr


@pytest.mark.slow
def test_keras3_jax_and_tf_keras_scripts_pass(tmp_path):
    """The other templates run too: Keras 3 on JAX (64-bit mode, sparse densified) and tf_keras legacy (IndexedSlices
    as they are) conform on the duplicate-pair vector, and their scripts say so."""
    need("jax")
    need("tf_keras")
    conforms(tmp_path, "--candidate=keras.optimizers:Adam", "--vector=sparse/duplicate-pair", "--dtype=float64",
             backend="jax")
    conforms(tmp_path, "--candidate=tf_keras.optimizers.legacy:Adam", "--vector=sparse/duplicate-pair",
             "--dtype=float32")


# --- what repro does not write -------------------------------------------------------------------------------------


def test_a_passing_item_is_one_line(tmp_path, capsys):
    script = tmp_path / "repro.py"
    status = cli.main(["repro", "--candidate=reference:Adam", "--vector=kernels/strided", "--dtype=float32",
                       "-o", str(script)])
    out = capsys.readouterr().out
    assert status == 1 and not script.exists()
    assert out == ("adam-conformance repro: kernels/strided [float32] passes for reference:Adam: nothing to reproduce "
                   "(--force writes the script anyway)\n")


@pytest.mark.parametrize("args,message", [
    (["--candidate=reference:Adam", "--vector=schedules/learning-rate-schedule", "--dtype=float32"],
     "schedules/learning-rate-schedule: learning_rate is a callable or a schedule, which a repro script does not express"),
    (["--candidate=reference:Adam", "--vector=kernels/nope", "--dtype=float32"],
     "--vector=kernels/nope: no such vector (ids are family/name, as the report prints them)"),
    (["--candidate=reference:Adam", "--vector=sparse/duplicate-pair", "--dtype=float16"],
     "sparse/duplicate-pair runs in float32, float64: not in float16"),
    (["--candidate=reference:Adam", "--vector=sparse/duplicate-pair", "--dtype=float32", "--profile=Nope"],
     "--profile: unknown deviation 'Nope'"),
    (["--from", "docs/results/6c-torch-fused.summary.json", "kernels/nope[float32]"],
     "no item 'kernels/nope[float32]'"),
    (["--from", "docs/results/6c-torch-fused.summary.json", "api/test_get_config"],
     "no item 'api/test_get_config'"),
    (["--vector=kernels/strided"], "give --candidate, --vector and --dtype, or --from RESULTS_JSON ITEM"),
])
def test_refusals_are_one_line(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(ROOT)
    status = cli.main(["repro", *args, "-o", str(tmp_path / "repro.py")])
    err = capsys.readouterr().err
    assert status == 2 and not (tmp_path / "repro.py").exists()
    assert err.count("\n") == 1 and err.startswith("adam-conformance repro: ") and message in err, err


def test_from_a_results_file(tmp_path):
    """``--from`` a --conformance-json document: candidate, adapter, mode and profile are the run's."""
    results = tmp_path / "report.json"
    results.write_text(json.dumps({
        "candidate": "tests.wrong_ports:UndampedMomentum", "adapter": "numpy", "raw": False, "execution": "eager",
        "declared_profile": [], "versions": {"numpy": np.__version__},
        "results": [{"nodeid": "vectors/sparse.yaml::sparse/duplicate-pair[float64]", "verdict": "fail"}]}))
    proc, script = write(tmp_path, "--from", str(results), "sparse/duplicate-pair[float64]")
    assert proc.returncode == 0, proc.stderr
    assert "--candidate=tests.wrong_ports:UndampedMomentum --vector=sparse/duplicate-pair --dtype=float64 " \
           "--profile=none" in " ".join(script.read_text(encoding="utf-8").split())
    assert run_script(script, "conformance,vectors,spec", str(ROOT)).returncode == 1
    results.write_text(json.dumps({"candidate": "node adam.js", "adapter": "pipe", "results": []}))
    proc, script = write(tmp_path / "x", "--from", str(results), "sparse/duplicate-pair[float64]")
    assert proc.returncode == 2 and proc.stderr == ("adam-conformance repro: the pipe adapter is not supported by "
                                                    "repro (supported: torch, keras3, tf_keras, numpy)\n")


@pytest.mark.slow
def test_an_adapter_without_a_template_is_one_line(tmp_path):
    need("optax")
    proc, script = write(tmp_path, "--candidate=optax:adam", "--vector=sparse/duplicate-pair", "--dtype=float64")
    assert proc.returncode == 2 and not script.exists()
    assert proc.stderr.strip().splitlines()[-1] == ("adam-conformance repro: the optax adapter is not supported by "
                                                   "repro (supported: torch, keras3, tf_keras, numpy)")


def test_expected_values_are_the_oracles(tmp_path):
    """With no deviation in the profile, the embedded expectations are the oracle's states, bit for bit."""
    from conformance import repro

    item = repro.measure("tests.wrong_ports:UndampedMomentum", "sparse/duplicate-pair", "float64")
    states = list(item.vector.states())
    assert item.profile == () and item.failing and 1 <= item.steps <= len(states)
    np.testing.assert_array_equal(item.expected["a"], states[item.steps - 1]["a"]["variable"])
    text = repro.script(item)
    literal = repro._array(item.expected["a"], 0)
    assert literal in text and np.array_equal(eval(literal, {"A": lambda v, s: np.array(v).reshape(s)}),
                                              item.expected["a"])
