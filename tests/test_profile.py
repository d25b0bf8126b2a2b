"""Deviations that compose, the run's deviation profile, and profiles a port declares (``--profile``).

The ports are written for these tests (``tests/profile_ports.py``): each stacks known deviations, as real ports do.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from conformance.diagnosis import diagnose as dg
from conformance.diagnosis.profile import build, item_line, sentence
from conformance.drive.runner import MODES, deviated_states, run
from conformance.adapters.numpy_port import NumpyPortAdapter
from conformance.expectations import ExpectationsError, load
from conformance.report.terminal import diagnosis_summary
from reference import variants
from tests.helpers import ROOT, bundled_vectors


@pytest.fixture(scope="module")
def vectors():
    return {v.id: v for v in bundled_vectors()}


@pytest.fixture
def kit(pytester):
    """The kit run in-process on a candidate; returns (pytest's result, the JSON document)."""
    pytester.syspathinsert(ROOT)

    def _run(*args):
        out = pytester.path / "out.json"
        result = pytester.runpytest("-p", "no:cacheprovider", f"--conformance-json={out}", *args)
        return result, json.loads(out.read_text())

    return _run


def test_no_deviation_gives_the_oracle_states_bit_for_bit(vectors):
    """The profile judge's port with no deviation is the oracle, on every bundled vector up to the kernels family."""
    for vector in vectors.values():
        if vector.size > 400_000:
            continue
        want = list(vector.states(vector.initial()))
        got = list(deviated_states(vector, (), vector.initial(), vector.gradients))
        for s, (a, b) in enumerate(zip(want, got, strict=True)):
            assert a["iterations"] == b["iterations"], (vector.id, s)
            for name, fields in a.items():
                if name == "iterations":
                    continue
                for f, x in fields.items():
                    y = b[name][f]
                    assert (x is None) == (y is None), (vector.id, s, name, f)
                    if x is not None:
                        assert np.array_equal(x, y, equal_nan=True) and x.dtype == y.dtype, (vector.id, s, name, f)


def test_two_changes_to_the_same_step_compose():
    """Epsilon placement and the step count change the same step of the rule: each on a hook of its own clause."""
    assert variants.composable(variants.Algorithm1Epsilon, variants.PerVariableStep)
    assert variants.composable(variants.Float32State, variants.Float32Arithmetic, variants.Algorithm1Epsilon)
    assert not variants.composable(variants.NoBiasCorrection, variants.NoFirstMomentCorrection)  # alternatives
    port = variants.compose(variants.PerVariableStep, variants.Algorithm1Epsilon)
    assert port.__name__ == "Algorithm1Epsilon + PerVariableStep"
    with pytest.raises(ValueError, match="change the same hook"):
        variants.compose(variants.NoBiasCorrection, variants.NoFirstMomentCorrection)
    with pytest.raises(ValueError, match="unknown deviation 'EpsilonOnRoot'"):
        variants.deviation("EpsilonOnRoot")


def test_a_late_variable_is_explained_by_both_deviations(vectors):
    """The per-item search finds the pair the old hooks could not build: epsilon on the root and a step per variable."""
    vector = vectors["multivariable/late-variable"]
    outcome = dg.chosen(run(NumpyPortAdapter(variants.compose(variants.Algorithm1Epsilon, variants.PerVariableStep)),
                            vector, "float32", MODES))
    d = dg.diagnose(vector, "float32", outcome)
    assert d.kind == "pair" and d.as_dict()["explanations"] == [["Algorithm1Epsilon", "PerVariableStep"]]


def test_an_infinite_distance_never_explains_part(vectors):
    """A port that puts a NaN where the spec has none is infinitely far from every replay: nothing explains part."""
    vector = vectors["dense/basic"]
    outcome = dg.chosen(run(NumpyPortAdapter(_nan_at_step_two()), vector, "float32", MODES))
    d = dg.diagnose(vector, "float32", outcome)
    assert d.kind == "none" and "explains part" not in d.text()


def _nan_at_step_two() -> type:
    from tests.candidates import NaNAtStepTwo

    return NaNAtStepTwo


def test_an_item_not_replayed_never_says_no_known_variant(vectors):
    vector = vectors["dense/basic"]
    outcome = dg.chosen(run(NumpyPortAdapter(variants.Algorithm1Epsilon), vector, "float64", MODES, keep=False))
    d = dg.diagnose(vector, "float64", outcome)
    assert d.kind == "unreplayed"
    for text in (d.text(), diagnosis_summary(d.as_dict())):
        assert "not replayed" in text and "no known variant" not in text


def _record(vid: str, *explanations: list[str]) -> dict:
    diagnosis = {"kind": "variant", "text": "...", "explanations": [list(e) for e in explanations],
                 "members": [[n, "ADAM-X", f"does {n}"] for e in explanations for n in e]}
    return {"vector": vid, "dtype": "float32", "verdict": "fail", "diagnosis": diagnosis if explanations else
            {"kind": "none", "text": "no known variant explains it", "explanations": []}}


def test_the_profile_is_the_fewest_deviations_that_explain_the_most():
    results = [_record("a", ["A"]), _record("b", ["A"]), _record("c", ["A", "B"]), _record("d", ["C"], ["A"]),
               _record("e")]
    profile = build(results)
    assert [d["name"] for d in profile["deviations"]] == ["A", "B"]
    assert profile["explained_by"] == {"a[float32]": ["A"], "b[float32]": ["A"], "c[float32]": ["A", "B"],
                                       "d[float32]": ["A"]}
    assert [u["item"] for u in profile["unexplained"]] == ["e[float32]"]
    assert [d["items"] for d in profile["deviations"]] == [4, 1]
    assert sentence(profile).startswith("behaves as the spec with: does A [A] (4 items); does B [B] (1 item); "
                                        "1 item unexplained: e[float32]")
    assert item_line(profile, results[2]) == "explained by the profile's A + B"
    assert item_line(profile, results[4]) == "not explained by the profile"


@pytest.mark.slow  # a whole run with every failure diagnosed
def test_a_torch_like_port_gets_exactly_its_profile(kit):
    """Epsilon on the root everywhere, a step per variable on the late variables: both named, every item explained."""
    result, doc = kit("--candidate=tests.profile_ports:TorchLike", "-k", "multivariable or discriminating or dense")
    profile = doc["profile"]
    assert [d["name"] for d in profile["deviations"]] == ["Algorithm1Epsilon", "PerVariableStep"]
    assert profile["unexplained"] == []
    late = {k: v for k, v in profile["explained_by"].items() if k.startswith("multivariable/late-variable")}
    assert late and all(v == ["Algorithm1Epsilon", "PerVariableStep"] for v in late.values())
    (line,) = [x for x in result.stdout.lines if x.startswith("profile: ")]
    assert line.startswith("profile: behaves as the spec with: epsilon on the bias-corrected root")
    assert "[Algorithm1Epsilon] (" in line and "; each variable counts its own steps" in line and "[PerVariableStep] (" in line


def test_a_float64_port_with_three_deviations_gets_all_three(kit):
    result, doc = kit("--candidate=tests.profile_ports:Float32Everywhere", "-k", "dense and float64")
    profile = doc["profile"]
    assert sorted(d["name"] for d in profile["deviations"]) == ["Algorithm1Epsilon", "Float32Arithmetic", "Float32State"]
    assert profile["unexplained"] == []


def test_a_declared_profile_passes_a_port_that_matches_it(kit):
    result, doc = kit("--candidate=tests.profile_ports:RootEpsilon", "--profile=Algorithm1Epsilon")
    assert result.ret == 0
    assert doc["declared_profile"] == ["Algorithm1Epsilon"]
    result.stdout.fnmatch_lines(["verdict: conforms to core with profile Algorithm1Epsilon on * items*"])


def test_a_declared_profile_fails_a_further_deviation_and_names_it(kit):
    result, doc = kit("--candidate=tests.profile_ports:RootEpsilonAndLazySparse", "--profile=Algorithm1Epsilon",
                      "-k", "sparse")
    assert result.ret == 1
    failed = [r for r in doc["results"] if r["verdict"] == "fail"]
    assert failed and all(r["family"] in ("sparse", "multivariable") for r in failed)
    assert [d["name"] for d in doc["profile"]["deviations"]] == ["LazySparse"]
    assert doc["profile"]["unexplained"] == []
    (line,) = [x for x in result.stdout.lines if x.startswith("profile: ")]
    assert line.startswith("profile: behaves as the spec with the declared Algorithm1Epsilon and further: ")
    assert "[LazySparse] (" in line and "unexplained" not in line


def test_a_deviation_with_state_of_its_own_is_judged_in_trajectory_mode(vectors):
    vector = vectors["multivariable/late-variable"]
    port = variants.compose(variants.Algorithm1Epsilon, variants.PerVariableStep)
    outcomes = run(NumpyPortAdapter(port), vector, "float32", MODES, profile=("Algorithm1Epsilon", "PerVariableStep"))
    by_mode = {o.mode: o for o in outcomes}
    assert by_mode["trajectory"].passed
    assert "PerVariableStep keeps a step count per variable" in by_mode["single-step"].unsupported


@pytest.mark.parametrize("option,message", [("--profile=EpsilonOnRoot", "unknown deviation 'EpsilonOnRoot'"),
                                            ("--profile=NoBiasCorrection,NoFirstMomentCorrection",
                                             "these deviations change the same hook")])
def test_a_bad_profile_is_a_usage_error(pytester, option, message):
    pytester.syspathinsert(ROOT)
    result = pytester.runpytest("-p", "no:cacheprovider", "--candidate=reference:Adam", option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--profile: *{message}*"])


def test_an_expectations_file_may_name_deviations(tmp_path):
    path = tmp_path / "e.yaml"
    path.write_text('candidates: ["x:Adam"]\nprofile: [Algorithm1Epsilon, PerVariableStep]\ndivergences: []\n')
    assert load(path).profile == ["Algorithm1Epsilon", "PerVariableStep"]
    path.write_text('candidates: ["x:Adam"]\nprofile: Algorithm1Epsilon\n')
    with pytest.raises(ExpectationsError, match="field 'profile': a list of deviation names"):
        load(path)
