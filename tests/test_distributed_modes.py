"""torch's distributed execution modes end to end (slow tier): a rank killed or hung in the middle of an item fails
that item alone, the run goes on with a fresh pool, and no rank process outlives the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT, need

pytestmark = pytest.mark.slow


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize("candidate,cause,isolate", [("KilledAdam", "rank 1 died: SIGKILL", False),
                                                     ("HungAdam", "did not finish within 20 s", False),
                                                     ("KilledAdam", "rank 1 died: SIGKILL", True)])
def test_a_broken_rank_fails_its_item_and_no_rank_outlives_the_run(candidate, cause, isolate, tmp_path):
    """Also under --isolate, where the ranks are children of the isolated process."""
    need("torch")
    log, marker, out = tmp_path / "ranks.log", tmp_path / "broke", tmp_path / "r.json"
    env = {**os.environ, "ADAM_CONFORMANCE_RANK_LOG": str(log), "ADAM_TEST_MARKER": str(marker),
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "-q",
                           f"--candidate=tests.torch_rank_candidates:{candidate}", "--adapter=torch",
                           "--execution=ddp", "--conformance-timeout=20", "--conformance-mode=trajectory",
                           "-k", "dense/basic or dense/scalar", f"--conformance-json={out}", "--rootdir", str(ROOT),
                           *(["--isolate"] if isolate else [])],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    records = json.loads(out.read_text(encoding="utf-8"))["results"]
    verdicts = [r["verdict"] for r in records]
    assert verdicts[0] == "fail" and cause in records[0]["message"], proc.stdout[-3000:]
    assert set(verdicts[1:]) == {"pass"} and len(verdicts) >= 3, proc.stdout[-3000:]
    pids = [int(line.split()[0]) for line in log.read_text(encoding="utf-8").splitlines()]
    assert len(pids) >= 4  # the broken pool's two ranks, then a fresh pool's
    assert int(marker.read_text(encoding="utf-8")) in pids
    assert [p for p in pids if not _gone(p)] == []


def test_tensorflow_workers_crash_on_an_empty_variable_and_none_outlives_the_run(tmp_path):
    """The known divergence behind ``kernels/empty`` under multiworker (the rows leave the kernels family out): the
    worker dies with SIGSEGV while the variable is built; the item is a known divergence and the run goes on."""
    need("tf_keras")
    log, out = tmp_path / "ranks.log", tmp_path / "r.json"
    env = {**os.environ, "ADAM_CONFORMANCE_RANK_LOG": str(log), "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "-q",
                    "--candidate=tf_keras.optimizers.legacy:Adam", "--execution=multiworker",
                    "-k", "kernels/empty or dense/basic", f"--conformance-json={out}", "--rootdir", str(ROOT)],
                   cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    records = {r["vector"] + r["dtype"]: r for r in json.loads(out.read_text(encoding="utf-8"))["results"]}
    empty = [r for key, r in records.items() if key.startswith("kernels/empty")]
    assert empty and all(r["verdict"] == "xfail" and "died: SIGSEGV" in r["message"] for r in empty), empty
    assert {r["verdict"] for key, r in records.items() if key.startswith("dense/basic")} == {"pass"}
    pids = [int(line.split()[0]) for line in log.read_text(encoding="utf-8").splitlines()]
    assert len(pids) >= 4 and [p for p in pids if not _gone(p)] == []


def test_ranks_started_by_a_launcher_conform_and_none_outlives_the_run(tmp_path):
    """--rank-hosts and --rank-launcher as a run across hosts uses them (README, "Past one machine"), on this machine:
    the launcher ``env`` runs each rank here; the run conforms, records where its ranks ran, and ends them all."""
    need("torch")
    log, out = tmp_path / "ranks.log", tmp_path / "r.json"
    env = {**os.environ, "ADAM_CONFORMANCE_RANK_LOG": str(log), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist",
                           "--candidate=torch.optim:Adam", "--execution=ddp", "--rank-hosts=127.0.0.1,127.0.0.1",
                           "--rank-launcher=env RANK_HOST={host}", "-k", "dense/basic or sparse/duplicate-pair",
                           f"--conformance-json={out}", "--rootdir", str(ROOT)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert proc.returncode == 0 and {r["verdict"] for r in doc["results"]} == {"pass"}, proc.stdout[-3000:]
    assert doc["rank_hosts"] == ["127.0.0.1", "127.0.0.1"] and doc["rank_launcher"] == "env RANK_HOST={host}"
    assert "2 ranks, even split on 127.0.0.1, 127.0.0.1 (started by 'env RANK_HOST={host}')" in proc.stdout
    pids = [int(line.split()[0]) for line in log.read_text(encoding="utf-8").splitlines()]
    assert len(pids) == 2 and [p for p in pids if not _gone(p)] == []
