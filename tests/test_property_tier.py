"""The property tier: it passes the reference, catches a wrong port, shrinks it, and exports a vector that fails the same way."""

from __future__ import annotations

import json

import yaml

from conformance.load.files import load_file
from tests.helpers import ROOT

WRONG = "--candidate=reference.variants:EpsilonInsideSqrt"
SEED = "--hypothesis-seed=3"


def _run(pytester, *args):
    pytester.syspathinsert(ROOT)
    return pytester.runpytest("-p", "no:cacheprovider", "--tier=property", SEED, *args)


def test_reference_satisfies_every_property(pytester, tmp_path):
    out = tmp_path / "r.json"
    result = _run(pytester, "--candidate=reference:Adam", "--property-examples=15", f"--conformance-json={out}")
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["property agrees-with-oracle: 15 examples, largest share of the error bound used *"])
    records = {r["vector"]: r for r in json.loads(out.read_text())["results"]}
    assert records["property/test_agrees_with_oracle"]["examples"] == 15
    assert records["property/test_agrees_with_oracle"]["clauses"] == ["ADAM-UPDATE-4"]


def test_wrong_port_is_caught_shrunk_and_exported(pytester, tmp_path, kit_cache):
    export = tmp_path / "exported"
    result = _run(pytester, WRONG, "--property-examples=40", f"--export-failures={export}", "-k", "agrees_with_oracle")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*property 'agrees-with-oracle' does not hold for reference.variants:EpsilonInsideSqrt*",
                                 "*shrunk counterexample written to *"])
    (path,) = sorted(export.glob("*.yaml"))
    vectors, errors = load_file(path)  # schema-valid, and its expectations come from the oracle
    assert errors == [] and len(vectors) == 1
    document = yaml.safe_load(path.read_text())
    assert document["provenance"]["candidate"] == "reference.variants:EpsilonInsideSqrt"
    assert document["provenance"]["hypothesis_seed"] == 3
    record = vectors[0].record
    assert len(record["steps"]) == 1 and len(record["variables"]) == 1, "Hypothesis shrinks to one step, one variable"

    # The exported vector fails the wrong port the same way, names the variant, and passes the reference.
    again = pytester.runpytest(*kit_cache, WRONG, f"--vectors={path}", "-k", "exported")
    again.assert_outcomes(failed=1)
    again.stdout.fnmatch_lines(["*diagnosis: matches EpsilonInsideSqrt*"])
    pytester.runpytest(*kit_cache, "--candidate=reference:Adam", f"--vectors={path}",
                       "-k", "exported").assert_outcomes(passed=1)


def test_a_fixed_seed_is_reproducible(pytester, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    for folder in (first, second):
        _run(pytester, WRONG, "--property-examples=40", f"--export-failures={folder}", "-k", "agrees_with_oracle")
    (a,), (b,) = sorted(first.glob("*.yaml")), sorted(second.glob("*.yaml"))
    assert a.name == b.name and a.read_text() == b.read_text()


def test_nondeterminism_is_reported_apart(pytester):
    result = _run(pytester, "--candidate=tests.candidates:Nondeterministic", "--property-examples=10", "-k", "deterministic")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*NONDETERMINISTIC: two runs of the same inputs differ*"])
