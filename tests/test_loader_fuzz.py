"""Fuzzing the loader: whatever a vector file holds, the only failure is the kit's own one-line VectorError."""

from __future__ import annotations

import copy
import json

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance.loader import YAML_LOADER, load_file
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
