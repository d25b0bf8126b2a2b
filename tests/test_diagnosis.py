"""The diagnosis beyond the list of known variants: localisation, pairs, ties, fitted hyperparameters, far defects."""

from __future__ import annotations

import pytest

from conformance.diagnosis import diagnose as dg
from conformance.adapters.numpy_port import NumpyPortAdapter
from conformance.load.vector import Vector
from conformance.report.terminal import diagnosis_summary
from conformance.drive.runner import MODES, run
from reference import variants
from tests import partial_ports, wrong_ports
from tests.helpers import ROOT, all_vectors


def _vector(vector_id: str) -> Vector:
    """A bundled vector by id."""
    (vector,) = [v for v in all_vectors() if v.id == vector_id]
    return vector


def diagnosis_of(port: type, vector_id: str, dtype: str) -> dg.Diagnosis:
    """The plugin's diagnosis of one item, as the plugin makes it."""
    vector = _vector(vector_id)
    outcome = dg.chosen(run(NumpyPortAdapter(port), vector, dtype, MODES))
    assert outcome is not None, "the port passes this item"
    return dg.diagnose(vector, dtype, outcome)


def test_a_second_moment_defect_is_localised_and_not_blamed_on_a_far_variant():
    d = diagnosis_of(wrong_ports.AbsGradSecondMoment, "dense/basic", "float32")
    assert d.kind == "none" and not d.matches
    assert d.localisation.text() == "departs at ADAM-UPDATE-3: v is wrong from step 1; m conforms (single-step mode)"
    assert d.text().startswith("no known variant explains it (the nearest, ")
    assert d.lines()[1].startswith("localisation: departs at ADAM-UPDATE-3")
    summary = diagnosis_summary(d.as_dict())
    assert summary == "no known variant explains it; departs at ADAM-UPDATE-3"


def test_only_the_variable_observed_is_said():
    d = diagnosis_of(partial_ports.HiddenMomentsAlgorithm1, "discriminating/epsilon-1", "float64")
    assert d.kind == "variant" and d.best.name == "Algorithm1Epsilon"
    assert d.localisation.text() == ("departs at one of ADAM-UPDATE-1 to ADAM-UPDATE-4: the variable is wrong from step 1; "
                                     "only the variable was observed (m, v not exposed) (single-step mode)")


def test_two_listed_defects_are_found_as_a_pair_and_the_dtype_problem_does_not_hide_them():
    port = wrong_ports.Float32StateAndAlgorithm1Epsilon
    d = diagnosis_of(port, "dense/basic", "float64")
    assert d.kind == "pair" and d.best.name == "Algorithm1Epsilon + Float32State"
    assert d.text().startswith("matches the pair Algorithm1Epsilon (ADAM-UPDATE-4: ") and "both defects at once" in d.text()
    assert "a.m and a.v of the wrong dtype or shape: compared by value" in d.localisation.text()
    assert d.as_dict()["clause"] == "ADAM-UPDATE-4; ADAM-DTYPE-1"


def test_a_tie_is_reported_as_a_tie():
    # With beta_1 = 0, 1 - beta_1**t is 1: dropping both corrections is dropping the second one alone.
    d = diagnosis_of(variants.NoBiasCorrection, "discriminating/beta1-zero", "float64")
    assert d.kind == "tie"
    assert {r.name for r in d.found} == {"NoBiasCorrection", "NoSecondMomentCorrection"}
    assert d.text().endswith("equally: this vector cannot tell them apart (single-step mode)")
    assert diagnosis_summary(d.as_dict()).endswith(" equally")


def test_a_changed_hyperparameter_is_fitted():
    d = diagnosis_of(wrong_ports.HardcodedEpsilon, "discriminating/epsilon-0.1", "float32")
    assert d.kind == "fit" and d.matches
    assert d.text().startswith("behaves as epsilon = 1e-08: the spec's update with that one hyperparameter changed")
    assert diagnosis_summary(d.as_dict(), ulps=False) == "behaves as epsilon = 1e-08"


def test_a_listed_variant_is_still_named_alone():
    d = diagnosis_of(variants.Algorithm1Epsilon, "discriminating/epsilon-1", "float32")
    assert d.kind == "variant" and d.text().startswith("matches Algorithm1Epsilon (ADAM-UPDATE-4: ")
    assert d.localisation.tensor == "variable" and d.localisation.conforming == ["m", "v"]


def test_pairs_that_override_the_same_hook_are_not_composed():
    skipped = dg.not_composable()
    assert ("NoFirstMomentCorrection", "NoBiasCorrection") in skipped
    assert variants.composable(variants.Float32State, variants.Algorithm1Epsilon)
    # Two deviations of the same step of the rule compose: each changes a hook of its own.
    assert variants.composable(variants.Algorithm1Epsilon, variants.PerVariableStep)
    assert ("Algorithm1Epsilon", "PerVariableStep") not in skipped


def test_a_vector_too_large_to_keep_is_still_localised():
    vector = _vector("dense/basic")
    outcome = dg.chosen(run(NumpyPortAdapter(wrong_ports.UndampedMomentum), vector, "float32", MODES, keep=False))
    d = dg.diagnose(vector, "float32", outcome)
    assert d.kind == "unreplayed" and d.localisation.tensor == "m"
    assert d.as_dict()["localisation"]["clause"] == "ADAM-UPDATE-2"


@pytest.fixture
def plugin(pytester, kit_cache):
    pytester.syspathinsert(ROOT)
    return lambda *args: pytester.runpytest(*kit_cache, *args)


def test_the_failure_report_shows_both(plugin):
    result = plugin("--candidate=tests.wrong_ports:AbsGradSecondMoment", "-k", "dense and basic and float32")
    result.stdout.fnmatch_lines([
        "  diagnosis: no known variant explains it (the nearest, *",
        "  localisation: departs at ADAM-UPDATE-3: v is wrong from step 1; m conforms (single-step mode)",
        "    diagnosis: no known variant explains it; departs at ADAM-UPDATE-3",
    ])
