"""The suite against the real frameworks: every result is a pass, an explained divergence or unsupported,
and the verdicts are those of the committed results behind the README's matrix."""

from __future__ import annotations

import json

import pytest

from conformance.report import matrix
from tests.helpers import ROOT
from tests.real_runs import RUNS, available, run, verdicts

RESULTS = ROOT / "docs" / "results"


@pytest.mark.parametrize("name", list(RUNS))
def test_real_candidate(name, tmp_path):
    if not available(name):
        pytest.skip(f"{RUNS[name][3]} is not installed")
    out = tmp_path / f"{name}.json"
    proc = run(name, out, tmp_path)
    assert out.exists(), proc.stdout[-2000:] + proc.stderr[-2000:]
    doc = json.loads(out.read_text())
    unexplained = [f"{r['nodeid']}: {r['verdict']}: {r.get('message')}" for r in doc["results"]
                   if r["verdict"] in ("fail", "stale", "error")]
    assert unexplained == [], "\n".join(unexplained)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert verdicts(out) == verdicts(RESULTS / f"{name}.json"), "verdicts differ from docs/results: regenerate them"


def test_readme_matrix_is_built_from_the_committed_results():
    table = matrix(sorted(RESULTS.glob("*.json")))
    assert table in (ROOT / "README.md").read_text(encoding="utf-8")
