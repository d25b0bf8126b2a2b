"""Fuzzing the loader: whatever a vector file holds, the only failure is the kit's own one-line VectorError."""

from __future__ import annotations

import copy
import json

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance.load.limits import YAML_LOADER
from conformance.load.files import load_file
from vectors import generate

BASE = yaml.load((generate.VECTOR_DIR / "sparse.yaml").read_text(encoding="utf-8"), Loader=YAML_LOADER)

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def _paths(node, prefix=()):
    """Every path into a document (keys and list indices)."""
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node[:3]):
            yield from _paths(v, prefix + (i,))


PATHS = [p for p in _paths(BASE) if p]


def _assert_clean(path):
    vectors, errors = load_file(path)  # must not raise
    for err in errors:
        text = str(err)
        assert "\n" not in text and text.startswith(str(path)), text
    return vectors, errors


@pytest.mark.slow  # 150 edited files, each loaded: twenty seconds
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(PATHS), JSON_VALUES, st.sampled_from(["replace", "delete"]))
def test_any_structural_edit_gives_one_line_errors(tmp_path, where, value, how):
    document = copy.deepcopy(BASE)
    parent = document
    for key in where[:-1]:
        parent = parent[key]
    if how == "delete" and isinstance(parent, (dict, list)):
        del parent[where[-1]]
    else:
        parent[where[-1]] = value
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    vectors, errors = _assert_clean(path)
    assert len(vectors) + len(errors) >= 1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
def test_any_text_gives_one_line_errors(tmp_path, text):
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    _assert_clean(path)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 10_000), st.sampled_from(["!!python/object/apply:os.system ['true']", "&a [*a]", "{", "\t",
                                                 "!!binary AAAA", "? [1]: 2", "%YAML 9.9\n---", "\x00"]))
def test_hostile_fragments_spliced_into_a_real_file(tmp_path, at, fragment):
    text = (generate.VECTOR_DIR / "amsgrad.yaml").read_text(encoding="utf-8")
    at %= len(text)
    path = tmp_path / "fuzz.yaml"
    path.write_text(text[:at] + fragment + text[at:], encoding="utf-8")
    _assert_clean(path)


def test_the_base_document_itself_loads():
    assert json.loads(json.dumps(BASE, default=str))["family"] == "sparse"


def _bomb(levels: int, width: int, mapping: bool) -> str:
    """A billion-laughs file: each level refers ``width`` times to the one below."""
    lines = ["family: dense", "vectors:", "- id: dense/bomb", "  initial: &b0 [1.0, 2.0]"]
    for k in range(1, levels + 1):
        refs = ", ".join(f"k{i}: *b{k - 1}" if mapping else f"*b{k - 1}" for i in range(width))
        lines.append(f"  l{k}: &b{k} " + ("{" + refs + "}" if mapping else f"[{refs}]"))
    return "\n".join(lines) + "\n"


@settings(max_examples=30, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(
    st.builds(_bomb, st.integers(1, 12), st.integers(2, 12), st.booleans()),
    st.integers(33, 5000).map(lambda n: "family: dense\nvectors: " + "[" * n + "]" * n + "\n"),
    st.integers(33, 5000).map(lambda n: "family: dense\nvectors: " + "{a: " * n + "1" + "}" * n + "\n"),
    st.integers(10_001, 200_000).map(lambda n: "family: dense\nvectors: [" + "9" * n + "]\n"),
    st.integers(10_001, 200_000).map(lambda n: "family: dense\ndescription: '" + "x" * n + "'\n"),
))
def test_hostile_files_are_refused_in_one_line_before_expansion(tmp_path, text):
    path = tmp_path / "dense.yaml"
    path.write_text(text, encoding="utf-8")
    vectors, errors = _assert_clean(path)  # the 2 s deadline: nothing is expanded
    assert vectors == [] and len(errors) == 1


def test_an_alias_is_named_with_its_line(tmp_path):
    path = tmp_path / "dense.yaml"
    path.write_text(_bomb(7, 10, False), encoding="utf-8")
    assert [str(e) for e in load_file(path)[1]] == [
        f"{path}: YAML anchors and aliases are not allowed (line 4)"]


def test_a_huge_declared_shape_is_refused_before_anything_is_allocated(tmp_path):
    document = copy.deepcopy(yaml.load((generate.VECTOR_DIR / "scale.yaml").read_text(encoding="utf-8"), Loader=YAML_LOADER))
    document["vectors"][0]["variables"]["a"]["shape"] = [10**6, 10**6]
    path = tmp_path / "scale.yaml"
    path.write_text(generate.render(document), encoding="utf-8")
    vectors, errors = _assert_clean(path)
    assert len(vectors) == len(document["vectors"]) - 1
    assert str(errors[0]) == (f"{path}: vector 'scale/dense-1e6': field 'variables.a.shape': shape [1000000, 1000000] "
                              "declares 1e+12 elements (at most 1e+08 per tensor; ADAM_CONFORMANCE_MAX_ELEMENTS)")
