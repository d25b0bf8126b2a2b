"""The fast tier's look at each real framework's adapter: a few vectors and API checks per framework, with the
verdicts of the committed full runs (docs/results).  The full rows are the slow tier's (tests/test_real_candidates.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT, need
from tests.real_runs import RUNS, verdicts

#: Dense and sparse gradients, AMSGrad, in float32 and float64; the API checks on slots and config.
PICK = "dense/basic or sparse/duplicate-pair or amsgrad/first-step or test_slot_names or test_get_config_keys"


@pytest.mark.parametrize("name", ["2-tf_keras-legacy", "3-tf.keras-keras3-tensorflow", "6-torch", "8-optax-adam"])
def test_a_few_items_give_the_committed_verdicts(name, tmp_path, kit_cache):
    candidate, extra, env, module = RUNS[name]
    need(module)
    out = tmp_path / "r.json"
    cmd = [sys.executable, "-m", "pytest", f"--candidate={candidate}", f"--conformance-json={out}", "-q",
           "-W", "ignore::DeprecationWarning", "--rootdir", str(tmp_path), *kit_cache, "--conformance-diagnosis=off",
           *extra, "-k", PICK]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env={**os.environ, **env})
    assert out.exists(), proc.stdout[-2000:] + proc.stderr[-2000:]
    mine = verdicts(out)
    committed = verdicts(ROOT / "docs" / "results" / f"{name}.summary.json")
    assert len(mine) >= 9 and mine == {k: v for k, v in committed.items() if k in mine}
    assert {k.split("::")[-1].split("[")[0] for k in mine} >= {"dense/basic", "amsgrad/first-step", "test_slot_names"}
