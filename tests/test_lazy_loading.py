"""Only what is selected is verified: collection parses the vector files, and a vector's schema check and oracle
re-derivation wait until an item of it is going to run; a broken vector still fails in one line when selected."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from conformance.clauses import LEVELS
from conformance.load import files
from conformance.load.limits import YAML_LOADER
from conformance.load.vector_format import content_hash
from tests.helpers import ROOT, all_vectors
from vectors import generate


@pytest.fixture
def counted(monkeypatch) -> list[str]:
    """The ids of the vectors verified through the oracle from now on."""
    seen: list[str] = []
    real = files.verify_record
    monkeypatch.setattr(files, "verify_record", lambda path, family, record: seen.append(record["id"]) or real(
        path, family, record))
    return seen


@pytest.fixture
def team(tmp_path):
    """A user's file: two copies of dense/basic under other ids, the second made stale (a wrong expected value)."""
    document = copy.deepcopy(yaml.load((generate.VECTOR_DIR / "dense.yaml").read_text(encoding="utf-8"),
                                       Loader=YAML_LOADER))
    good, stale = (copy.deepcopy(next(v for v in document["vectors"] if v["id"] == "dense/basic")) for _ in range(2))
    good["id"], stale["id"] = "team/good", "team/stale"
    stale["steps"][0]["expected"]["variables"]["a"]["variable"][0][0] += 1.0
    good["sha256"], stale["sha256"] = content_hash(good), content_hash(stale)  # stale by its value, not by its hash
    path = tmp_path / "team.yaml"
    path.write_text(generate.render({**document, "family": "team", "vectors": [good, stale]}), encoding="utf-8")
    return path


def test_only_the_selected_vectors_are_verified(pytester, counted, team):
    pytester.syspathinsert(ROOT)
    result = pytester.runpytest("-p", "no:cacheprovider", "--candidate=reference:Adam", f"--vectors={team}",
                                "-k", "team/good or (dense/basic and float32)")
    result.assert_outcomes(passed=3)
    assert sorted(counted) == ["dense/basic", "team/good"]  # not the 50-odd others, nor the stale one


def test_a_broken_vector_fails_in_one_line_when_selected(pytester, counted, team):
    pytester.syspathinsert(ROOT)
    out = pytester.path / "r.json"
    result = pytester.runpytest("-p", "no:cacheprovider", "--candidate=reference:Adam", f"--vectors={team}",
                                f"--conformance-json={out}", "-k", "team")
    result.assert_outcomes(passed=2, failed=1)  # the stale vector's two dtypes: one load-error item
    result.stdout.fnmatch_lines([f"{team}: vector 'team/stale': field 'steps[[]0[]].expected.variables.a.variable': "
                                 "stale: element 0 is *, the oracle gives *"])
    records = {r["nodeid"]: r for r in json.loads(out.read_text())["results"]}
    assert {n.split("::")[-1]: r["verdict"] for n, r in records.items()} == {
        "team/good[float32]": "pass", "team/good[float64]": "pass", "team/stale[load-error]": "error"}
    assert sorted(counted) == ["team/good", "team/stale"]


def test_a_file_joins_the_verified_cache_once_all_its_vectors_are_verified(team):
    verified: set[str] = set()
    parsed = files.parse_file(team, verified)
    assert [p.id for p in parsed.pending] == ["team/good", "team/stale"] and parsed.errors == []
    assert parsed.pending[0].vector().expected is not None and verified == set()
    with pytest.raises(files.VectorError, match="stale"):
        parsed.pending[1].vector()
    assert verified == set()  # a file with a broken vector is checked again next time
    bundled = files.bundled_paths()[0]
    parsed = files.parse_file(bundled, verified)
    for pending in parsed.pending[:-1]:
        pending.vector()
    assert verified == set()
    parsed.pending[-1].vector()
    assert verified == {parsed.digest}
    again = files.parse_file(bundled, verified)  # trusted now: its vectors are made without the oracle
    assert [v.id for v in again.made()] == [p.id for p in parsed.pending]


def test_a_record_whose_items_cannot_be_named_is_refused_at_collection(tmp_path):
    document = copy.deepcopy(yaml.load((generate.VECTOR_DIR / "dense.yaml").read_text(encoding="utf-8"),
                                       Loader=YAML_LOADER))
    document["vectors"][0]["dtypes"] = "float32"  # not a list: there is no item to name
    path = tmp_path / "dense.yaml"
    path.write_text(generate.render(document), encoding="utf-8")
    parsed = files.parse_file(path)
    (error,) = [e for e in parsed.entries if isinstance(e, files.VectorError)]
    assert str(error) == f"{path}: vector 'dense/basic': field 'dtypes': 'float32' is not of type 'array'"
    assert len(parsed.pending) == len(document["vectors"]) - 1


def test_the_diagnosis_can_be_turned_off(pytester, kit_cache, tmp_path):
    pytester.syspathinsert(ROOT)
    out = tmp_path / "r.json"
    pick = ("-k", "discriminating/epsilon-1 and float64")
    result = pytester.runpytest(*kit_cache, "--candidate=reference.variants:Algorithm1Epsilon", f"--conformance-json={out}",
                                "--conformance-diagnosis=off", *pick)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*a.variable out of bound from step 1*"])
    assert "diagnosis:" not in result.stdout.str()
    (record,) = json.loads(out.read_text())["results"]
    assert record["verdict"] == "fail" and "diagnosis" not in record
    on = pytester.runpytest(*kit_cache, "--candidate=reference.variants:Algorithm1Epsilon", *pick)
    on.stdout.fnmatch_lines(["*diagnosis: matches Algorithm1Epsilon*"])  # the default
    pytester.runpytest("--help").stdout.fnmatch_lines(["*--conformance-diagnosis={on,off}*"])


def test_every_bundled_vector_is_collected(pytester, kit_cache):
    """Lazy verification collects what eager loading did: one item per vector and dtype (large ones with --scale)."""
    pytester.syspathinsert(ROOT)
    result = pytester.runpytest(*kit_cache, "--candidate=reference:Adam", "--scale=1e9", "--collect-only", "-q",
                                "--level=" + ",".join(LEVELS))  # the opt-in level later too
    items = {line.split("::")[1] for line in result.stdout.lines if line.startswith("vectors/")}
    assert items == {f"{v.id}[{d}]" for v in all_vectors() for d in v.dtypes}
