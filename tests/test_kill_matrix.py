"""The kill matrix on two variants (the fast tier's run of conformance/diagnosis/kill_matrix.py; every variant's
is tests/test_mutants.py, in the slow tier)."""

from __future__ import annotations

import pytest

from conformance.diagnosis.kill_matrix import kill_matrix
from reference import variants
from tests.helpers import CLIPPING_ITEMS, NUMPY_PROTOCOL


@pytest.mark.slow  # two whole runs
def test_one_wrong_and_one_correct_variant(monkeypatch):
    correct = variants.CORRECT[0]
    monkeypatch.setattr(variants, "WRONG", [variants.EpsilonInsideSqrt])
    monkeypatch.setattr(variants, "CORRECT", [correct])
    matrix = kill_matrix(jobs=2)
    assert matrix["survivors"] == [] and matrix["correct_failing"] == []
    killed = matrix["mutants"]["EpsilonInsideSqrt"]["killed_by"]
    assert killed and matrix["mutants"]["EpsilonInsideSqrt"]["clause"].startswith("ADAM-")
    assert {k for k, v in matrix["kills_by_item"].items() if v} == set(killed)
    assert all(matrix["kills_by_item"][k] == ["EpsilonInsideSqrt"] for k in killed)
    assert matrix["vectors_killing_nothing"] and not set(matrix["vectors_killing_nothing"]) & set(killed)
    summary = matrix["correct"][correct.__name__]["summary"]
    assert summary == {"pass": summary["pass"], "unsupported": len(NUMPY_PROTOCOL) + len(CLIPPING_ITEMS)}
