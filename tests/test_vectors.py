"""The committed vectors: schema, byte-identical regeneration, exact floats, self-verification, clause coverage."""

from __future__ import annotations

import json
import re
import struct

import jsonschema
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from conformance.load.vector_format import SCHEMA_PATH
from conformance.load.vector import VectorError
from conformance.load.limits import YAML_LOADER
from conformance.load.files import bundled_paths, load_file, load_paths
from tests.helpers import ROOT, all_vectors
from vectors import generate, scenarios

SPEC = (ROOT / "spec" / "adam.md").read_text(encoding="utf-8")
CLAUSES = dict(re.findall(r"^### (ADAM-[A-Z0-9-]+) · ([a-z0-9-]+) ·", SPEC, flags=re.M))


def test_every_family_has_a_committed_file():
    assert sorted(p.stem for p in bundled_paths()) == sorted(scenarios.FAMILIES)


@pytest.mark.parametrize("path", bundled_paths(), ids=lambda p: p.name)
def test_file_validates_against_the_schema(path):
    document = yaml.load(path.read_text(encoding="utf-8"), Loader=YAML_LOADER)
    jsonschema.validate(document, json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))


def test_every_committed_vector_loads_and_reproduces_through_the_oracle():
    vectors, errors = load_paths(bundled_paths())
    assert errors == []
    assert sorted(v.id for v in vectors) == sorted(scn.id for build in scenarios.FAMILIES.values() for scn in build())
    assert len({v.id for v in vectors}) == len(vectors)


@pytest.mark.slow  # a minute: the 10^8-element vector's digests
def test_regeneration_is_byte_identical(tmp_path):
    # The one regeneration of the whole set in CI (what ``adam-conformance check`` does).
    generate.generate(tmp_path)
    for path in bundled_paths():
        assert (tmp_path / path.name).read_bytes() == path.read_bytes(), path.name


@given(st.floats(allow_nan=False))
def test_floats_round_trip_exactly_through_yaml(x):
    text = generate.render({"x": x})
    back = yaml.load(text, Loader=YAML_LOADER)["x"]
    assert isinstance(back, float) and struct.pack("<d", back) == struct.pack("<d", x)


def test_committed_float_text_reparses_to_the_same_text():
    for path in bundled_paths():
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=YAML_LOADER)
        assert generate.render(document) == path.read_text(encoding="utf-8"), path.name


# --- self-verification: a stale or hand-edited vector is caught when it is loaded ---------------


def _edited(tmp_path, old, new, count=1):
    text = (generate.VECTOR_DIR / "sparse.yaml").read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "sparse.yaml"
    path.write_text(text.replace(old, new, count), encoding="utf-8")
    return load_file(path)


def test_hand_edited_expected_value_is_caught(tmp_path):
    _, errors = _edited(tmp_path, "m: [0.0, 0.03125, 0.0]", "m: [0.0, 0.03126, 0.0]")
    assert [str(e) for e in errors] == [
        f"{tmp_path / 'sparse.yaml'}: vector 'sparse/duplicate-pair': field 'steps[0].expected.variables.a.m': "
        "stale: element 1 is 0.03126, the oracle gives 0.03125 (regenerate with `adam-conformance generate`)"
    ]


def test_changed_hyperparameter_with_old_expectations_is_caught(tmp_path):
    """The ONNX failure mode: an input changed (or dropped) while the outputs stayed."""
    vectors, errors = _edited(tmp_path, "epsilon: 1.1920928955078125e-07}", "epsilon: 0.25}", count=1)
    assert len(errors) == 1 and "sparse/duplicate-pair" in str(errors[0]) and "stale" in str(errors[0])
    assert len(vectors) == 5, "the other vectors of the file still load"


def test_edited_description_is_caught_by_the_content_hash(tmp_path):
    _, errors = _edited(tmp_path, "must act as their sum", "must act as their total")
    assert len(errors) == 1 and "content hash mismatch" in str(errors[0]) and "field 'sha256'" in str(errors[0])


# --- clauses ------------------------------------------------------------------------------------


def _check_clauses():
    """Clauses cited by the API checks and the property tier's checks."""
    text = "".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "conformance" / "suite").glob("test_*.py")))
    return set(re.findall(r'clause\("(ADAM-[A-Z0-9-]+)"\)', text))


def test_spec_clauses_are_numbered_and_levelled():
    assert len(CLAUSES) >= 30
    assert set(CLAUSES.values()) == {"core", "api", "tf2-detail", "later"}


def test_every_cited_clause_exists_and_levels_agree():
    for v in all_vectors():
        for clause in v.clauses:
            assert clause in CLAUSES, f"{v.id} cites unknown {clause}"
        if v.level not in ("tf2-detail", "later"):
            assert all(CLAUSES[c] == "core" for c in v.clauses), v.id
    assert _check_clauses() <= set(CLAUSES)


def test_every_core_and_api_clause_is_tested():
    from conformance.adapters import replicas

    # Section R's clauses are cited by every item of a distributed execution mode (collect.py).
    covered = {c for v in all_vectors() for c in v.clauses} | _check_clauses() | set(replicas.CLAUSES)
    missing = sorted(c for c, level in CLAUSES.items() if c not in covered)
    assert missing == []


# --- large vectors: generator inputs and digest expectations are checked when the vector runs -------------------


def _large(tmp_path, edit):
    document = yaml.load((generate.VECTOR_DIR / "scale.yaml").read_text(encoding="utf-8"), Loader=YAML_LOADER)
    record = next(v for v in document["vectors"] if v["id"] == "scale/sparse-1e6")
    document["vectors"] = [record]
    edit(record)
    record["sha256"] = generate.content_hash(record)  # a consistent file whose content is wrong
    path = tmp_path / "scale.yaml"
    path.write_text(generate.render(document), encoding="utf-8")
    (vector,), errors = load_file(path)
    assert errors == []
    return vector


def test_a_wrong_digest_is_caught_when_the_vector_runs(tmp_path):
    def edit(record):
        record["steps"][1]["expected"]["variables"]["a"]["v"]["sha256"] = "0" * 64

    vector = _large(tmp_path, edit)
    with pytest.raises(VectorError, match=r"field 'steps\[1\]\.expected\.variables\.a\.v': stale: the oracle's state"):
        list(vector.states())


def test_a_wrong_generator_checksum_is_caught(tmp_path):
    def edit(record):
        record["variables"]["a"]["initial"]["seed"] += 1

    vector = _large(tmp_path, edit)
    with pytest.raises(VectorError, match=r"field 'variables\.a\.initial': generated values do not match"):
        vector.initial()
