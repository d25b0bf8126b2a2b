"""Bad vector files give one line naming the file, the vector and the field, and the rest still loads."""

from __future__ import annotations

import copy

import pytest
import yaml

from conformance.load.limits import YAML_LOADER
from conformance.load.files import load_file
from vectors import generate

BASE = yaml.load((generate.VECTOR_DIR / "dense.yaml").read_text(encoding="utf-8"), Loader=YAML_LOADER)
N = len(BASE["vectors"])


def _write(tmp_path, document):
    path = tmp_path / "dense.yaml"
    path.write_text(generate.render(document), encoding="utf-8")
    return path


def _broken(tmp_path, edit):
    document = copy.deepcopy(BASE)
    edit(document["vectors"][0])
    return load_file(_write(tmp_path, document))


def _one_error(tmp_path, edit):
    vectors, errors = _broken(tmp_path, edit)
    assert len(errors) == 1, errors
    assert len(vectors) == N - 1, "the other vectors of the file still load"
    message = str(errors[0])
    assert "\n" not in message and message.startswith(str(tmp_path / "dense.yaml") + ": vector 'dense/basic': ")
    return message


CASES = [
    ("missing field", lambda v: v.pop("dtypes"), "'dtypes' is a required property"),
    ("unknown field", lambda v: v.update(colour="red"), "Additional properties are not allowed ('colour' was unexpected)"),
    ("unknown dtype", lambda v: v.update(dtypes=["float8"]), "field 'dtypes[0]': 'float8' is not one of"),
    ("wrong shape", lambda v: v["variables"]["a"].update(shape=[3, 2]),
     "field 'variables.a.initial': shape [2, 3] does not match the declared shape [3, 2]"),
    ("step count", lambda v: v["hyperparameters"].update(learning_rate={"callable": [0.5, 0.25]}),
     "field 'hyperparameters.learning_rate': 2 per-step values for 5 steps"),
    ("non-finite", lambda v: v["steps"][1]["gradients"]["a"]["dense"][0].__setitem__(0, float("inf")),
     "field 'steps[1].gradients.a.dense': non-finite value (NaN or Inf) in an input; allowed only in gradients of a "
     "vector flagged 'non-finite'"),
    ("inexact in a listed dtype", lambda v: v.update(dtypes=["float16", "float64"]),
     "not exactly representable in float16"),
    ("wrong type", lambda v: v.update(amsgrad="yes"), "field 'amsgrad': 'yes' is not of type 'boolean'"),
    ("undeclared variable", lambda v: v["steps"][0]["gradients"].update(b={"dense": [1.0]}),
     "field 'steps[0].gradients.b': gradient for undeclared variable 'b'"),
    ("mixed with another dtype", lambda v: v.update(dtypes=["mixed", "float64"]),
     "field 'dtypes': 'mixed' must be the only dtype a vector lists"),
    ("mixed without a variable's dtype", lambda v: v.update(dtypes=["mixed"]),
     "field 'variables.a.dtype': a variable of a mixed vector needs a dtype"),
    ("a variable's dtype in a vector not mixed", lambda v: v["variables"]["a"].update(dtype="float32"),
     "field 'variables.a.dtype': only a vector listing 'mixed' gives a variable a dtype of its own"),
    ("mixed with the tf2 oracle", lambda v: (v.update(dtypes=["mixed"], oracle="tf2"),
                                             v["variables"]["a"].update(dtype="float64")),
     "field 'oracle': a mixed vector needs oracle 'exact'"),
    ("inexact in a variable's own dtype", lambda v: (v.update(dtypes=["mixed"]), v["variables"]["a"].update(dtype="float16")),
     "field 'variables.a.initial': value not exactly representable in float16"),
]


@pytest.mark.parametrize("edit,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_schema_and_consistency_errors(tmp_path, edit, expected):
    assert expected in _one_error(tmp_path, edit)


def test_malformed_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("format: x\nvectors: [1, 2\n", encoding="utf-8")
    vectors, errors = load_file(path)
    assert vectors == [] and len(errors) == 1
    assert str(errors[0]).startswith(f"{path}: malformed YAML at line 3, column 1: ")


def test_unsafe_tag_never_constructs_objects(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("!!python/object/apply:os.system ['echo hacked > " + str(tmp_path / "owned") + "']\n", encoding="utf-8")
    vectors, errors = load_file(path)
    assert vectors == [] and "malformed YAML" in str(errors[0]) and "python/object" in str(errors[0])
    assert not (tmp_path / "owned").exists()


def test_top_level_not_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n", encoding="utf-8")
    assert str(load_file(path)[1][0]) == f"{path}: expected a mapping at the top level, got list"


def test_file_level_schema_error(tmp_path):
    document = copy.deepcopy(BASE)
    document["format"] = "something-else/9"
    _, errors = load_file(_write(tmp_path, document))
    assert str(errors[0]).startswith(f"{tmp_path / 'dense.yaml'}: field 'format': ")


def test_duplicate_vector_id(tmp_path):
    document = copy.deepcopy(BASE)
    document["vectors"].append(copy.deepcopy(document["vectors"][0]))
    vectors, errors = load_file(_write(tmp_path, document))
    assert len(vectors) == N and [str(e).split(": ", 1)[1] for e in errors] == ["vector 'dense/basic': field 'id': duplicate vector id in this file"]
