"""The distributed execution modes that run in the pytest process (TensorFlow ``mirrored``, JAX ``sharded`` and
``pmap``): the replicas' shares of a gradient, the devices set up before a framework starts, and the modes against
the real frameworks (slow tier: each in a process of its own, as TensorFlow and JAX never share one)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conformance.adapters import replicas
from conformance.clauses import LEVELS
from conformance.dtypes import NUMPY_DTYPES
from reference.adam import IndexedSlices, dense_gradient
from tests.helpers import need


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize("split", ["even", "one-rank"])
@pytest.mark.parametrize("n", [2, 4])
def test_shares_sum_to_the_gradient_bit_for_bit(dtype, split, n):
    dt = NUMPY_DTYPES[dtype]
    g = np.array([0.75, -3.0, 1e-3, 0.0, -0.0, 5.5])
    total = np.zeros(6, dt)
    for part in replicas.shares(g, n, split, dt):
        assert part.dtype == dt
        total = total + part
    assert np.array_equal(total, g.astype(dt)) and np.array_equal(np.signbit(total[3]), np.signbit(g.astype(dt)[3]))
    sparse = IndexedSlices(np.array([[1.5], [-2.0], [0.25]]), np.array([0, 2, 0]), (3, 1))
    parts = replicas.shares(sparse, n, split, dt)
    rows = np.concatenate([p.values for p in parts]).astype(np.float64)  # what a strategy's concatenation delivers
    indices = np.concatenate([p.indices for p in parts])
    assert np.array_equal(dense_gradient(IndexedSlices(rows, indices, (3, 1)), (3, 1)),
                          dense_gradient(sparse, (3, 1)).astype(dt).astype(np.float64))
    assert replicas.shares(None, n, split, dt) == [None] * n


def test_jax_gets_its_host_devices_before_it_starts(monkeypatch):
    if "jax" in sys.modules:
        pytest.skip("JAX was imported into this worker by another test")
    monkeypatch.setenv("XLA_FLAGS", f"--xla_cpu_enable_fast_math=false {replicas.XLA_DEVICES}=8")
    replicas.prepare("optax", "sharded", 2)
    assert os.environ["XLA_FLAGS"] == f"--xla_cpu_enable_fast_math=false {replicas.XLA_DEVICES}=2"
    monkeypatch.setenv("XLA_FLAGS", "")
    replicas.prepare("optax", "jit", 2)  # a one-device mode sets nothing up
    assert os.environ["XLA_FLAGS"] == ""


def test_keras3_sparse_divergences_are_scoped_to_the_even_split():
    """Keras 3's sparse items are known divergences under the mirrored modes when every replica holds every row
    (--split=even); with the whole gradient on one replica they conform, and the entries do not apply."""
    from conformance import expectations

    exp = expectations.load(expectations.BUNDLED / "keras3.yaml")
    even = {e.id for e in exp.for_run("mirrored", "tensorflow", "even").entries}
    assert {"sparse/duplicate-pair", "multivariable/sparse-and-dense"} <= even
    assert not {e.id for e in exp.for_run("mirrored", "tensorflow", "one-rank").entries} & even - {
        e.id for e in exp.for_run("eager", "tensorflow").entries}


#: The clipping family's items for -k (not "clipping": a test's temporary folder named so would select every item).
CLIPPING = "clipnorm or clipvalue"


def _run(candidate: str, execution: str, pick: str, tmp_path, env: dict | None = None, *options: str) -> dict:
    """The suite against ``candidate`` in ``execution`` on the items ``pick`` selects; the results document.
    ``options``: more of the kit's options (the diagnosis is off unless one of them turns it on)."""
    out = tmp_path / "r.json"
    out.unlink(missing_ok=True)
    diagnosis = [] if any(o.startswith("--conformance-diagnosis") for o in options) else ["--conformance-diagnosis=off"]
    cmd = [sys.executable, "-m", "pytest", f"--candidate={candidate}", f"--execution={execution}", "-k", pick,
           "--level=" + ",".join(LEVELS),  # the clipping items are of the opt-in level later
           f"--conformance-json={out}", "-q", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning",
           *diagnosis, *options, "--rootdir", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env={**os.environ, **(env or {})},
                          timeout=600)
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text(encoding="utf-8"))


@pytest.mark.slow
@pytest.mark.parametrize("execution", ["mirrored", "mirrored-function"])
def test_tf_keras_mirrored_conforms_and_its_replicas_agree(execution, tmp_path):
    """tf_keras legacy under MirroredStrategy (2 logical CPUs): every item conforms, the replicas agree bit for bit,
    dense items are bit-identical to one device, and sparse duplicates arriving from both replicas are summed in
    another order (3 ulps in v).  spec ADAM-TF2-DIST-1/2; docs/adapters.md, "Distributed modes"."""
    need("tf_keras")
    doc = _run("tf_keras.optimizers.legacy:Adam", execution, "dense or sparse or " + CLIPPING, tmp_path)
    results = [r for r in doc["results"] if r["verdict"] != "unsupported"]
    assert len(results) >= 32 and {r["verdict"] for r in results} == {"pass"}, doc["summary"]
    assert len([r for r in results if r["family"] == "clipping"]) == 6  # it clips the aggregated gradient
    assert all(r.get("replicas") is None for r in results)
    assert [r["vector"] for r in results if r["family"] == "dense" and r.get("twin")] == []
    differ = {r["vector"] for r in results if r.get("twin")}
    assert differ <= {"sparse/duplicates-int32", "sparse/duplicates-int64", "sparse/amsgrad-duplicates"}, differ


@pytest.mark.slow
def test_keras3_mirrored_sparse_is_a_known_divergence(tmp_path):
    """Keras 3 under MirroredStrategy squares each occurrence of an index arriving from both replicas: its sparse
    items are known divergences (keras3.yaml, scoped to the mirrored modes), its dense ones conform."""
    need("tensorflow")
    doc = _run("tensorflow.keras.optimizers:Adam", "mirrored", "dense/basic or sparse", tmp_path)
    verdicts = {(r["vector"], r["dtype"]): r["verdict"] for r in doc["results"]}
    assert verdicts[("dense/basic", "float32")] == "pass"
    sparse = {k: v for k, v in verdicts.items() if k[0].startswith("sparse/")}
    assert sparse and set(sparse.values()) == {"xfail"}, sparse


@pytest.mark.slow
@pytest.mark.parametrize("execution", ["mirrored", "mirrored-function"])
def test_keras3_mirrored_clips_each_replica_named(execution, tmp_path):
    """Keras 3 clips each replica's share before the strategy sums them: without expectations its 6 clipping items
    fail under the mirrored modes, each diagnosed as PerReplicaClipping; with keras3.yaml they are known divergences,
    and they pass on one device (eager) and with the whole gradient on one replica (--split=one-rank).
    spec ADAM-TF2-DIST-1, ADAM-CLIP-APPLY-1; docs/adapters.md, "Distributed modes"."""
    need("tensorflow")
    env = {"KERAS_BACKEND": "tensorflow"}
    doc = _run("keras.optimizers:Adam", execution, CLIPPING, tmp_path, env, "--expectations=none",
               "--conformance-diagnosis=on")
    results = doc["results"]
    assert len(results) == 6 and {r["verdict"] for r in results} == {"fail"}, doc["summary"]
    assert {r["diagnosis"]["variant"] for r in results} == {"PerReplicaClipping"}, [r["diagnosis"] for r in results]
    assert all(r["twin"] and r["twin"].startswith("not bit-identical to one device") for r in results)
    doc = _run("keras.optimizers:Adam", execution, CLIPPING, tmp_path, env)
    assert {r["verdict"] for r in doc["results"]} == {"xfail"}, doc["summary"]
    doc = _run("keras.optimizers:Adam", execution, CLIPPING, tmp_path, env, "--split=one-rank")
    assert {r["verdict"] for r in doc["results"]} == {"pass"}, doc["summary"]
    if execution == "mirrored":
        doc = _run("keras.optimizers:Adam", "eager", CLIPPING, tmp_path, env)
        assert [r["verdict"] for r in doc["results"]] == ["pass"] * 6, doc["summary"]


@pytest.mark.slow
@pytest.mark.parametrize("execution", ["sharded", "pmap"])
def test_optax_distributed_conforms(execution, tmp_path):
    """optax under NamedSharding and jit conforms, bit-identical to single-device jit on the dense family but not on
    kernels/widths (XLA compiles the sharded loops differently); under pmap it conforms, not bit-identical to jit
    (a few ulps in v), and its replicas agree.  docs/adapters.md, "Distributed modes"."""
    need("optax")
    # pmap compiles a step per shape: the kernels' widths take it a minute, and the row (8d) leaves them out.
    doc = _run("optax:adam", execution, "dense or kernels/widths" if execution == "sharded" else "dense", tmp_path)
    results = [r for r in doc["results"] if r["verdict"] != "unsupported"]
    assert len(results) >= 14 and {r["verdict"] for r in results} == {"pass"}, doc["summary"]
    assert all(r.get("replicas") is None for r in results)
    differ = {r["vector"] for r in results if r.get("twin")}
    if execution == "sharded":
        assert differ == {"kernels/widths", "kernels/widths-half"}, differ  # -k widths selects both
    else:
        assert "dense/long-run" in differ, differ
