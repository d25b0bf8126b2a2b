"""The NumPy-port protocol's fine print, as wrappers of real libraries met it (candidates: ``tests/protocol_ports.py``)."""

from __future__ import annotations

import importlib.metadata
import json

import numpy as np
import pytest

from conformance.adapters.numpy_port import imported_versions
from tests import protocol_ports
from tests.helpers import ROOT


@pytest.fixture
def run(pytester, tmp_path):
    pytester.syspathinsert(ROOT)

    def _run(*args):
        out = tmp_path / f"r{len(list(tmp_path.iterdir()))}.json"
        result = pytester.runpytest("-p", "no:cacheprovider", f"--conformance-json={out}", *args)
        return result, json.loads(out.read_text()) if out.exists() else None

    return _run


def test_a_get_slot_that_raises_type_error_is_reported_at_get_slot(run):
    # In multivariable/late-variable, b is first updated at step 2: after step 1 the kit reads b's slots.
    result, doc = run("--candidate=tests.protocol_ports:UnknownVariableTypeError", "-k", "late-variable")
    assert result.ret == 1
    messages = {r["message"] for r in doc["results"] if r["verdict"] == "fail"}
    assert messages == {"the candidate raised TypeError at step 1: get_slot(variable 'b', 'm') raised it, not "
                        "apply_gradients: 'b' has no slots yet, and get_slot raises KeyError then (the NumPy-port "
                        "protocol): 'NoneType' object is not subscriptable"}


def test_the_report_names_the_wrapped_library_and_its_version(run):
    yaml_version = importlib.metadata.version("PyYAML")
    results = {}
    for port, version in (("DeclaresItsLibrary", "1.2"), ("DeclaresAnotherVersion", "1.3")):
        result, doc = run(f"--candidate=tests.protocol_ports:{port}", "-q", "-k", "dense/basic")
        assert result.ret == 0
        assert doc["versions"] == {"numpy": np.__version__, "PyYAML": yaml_version, "mylib": version}
        result.stdout.fnmatch_lines([f"candidate tests.protocol_ports:{port} via the numpy adapter; numpy *, "
                                     f"PyYAML {yaml_version}, mylib {version}"])
        results[port] = doc["versions"]
    assert results["DeclaresItsLibrary"] != results["DeclaresAnotherVersion"]  # two versions, two reports


def test_imported_versions_leave_out_the_standard_library_the_kit_and_unpackaged_modules():
    import reference

    assert imported_versions(reference.Adam) == {"numpy": np.__version__}  # reference is the kit's; math is stdlib
    assert imported_versions(protocol_ports.V1Adam) == {"PyYAML": importlib.metadata.version("PyYAML")}


def test_a_wrapped_optimizer_without_part_of_the_api_is_unsupported_through_the_tf_keras_adapter(run):
    pytest.importorskip("tf_keras")
    result, doc = run("--candidate=tests.protocol_ports:V1Adam", "--adapter=tf_keras", "-k",
                      "minimize_var_list or get_gradients or get_updates or assigned_iterations or get_config_keys")
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # only because zero vectors ran: never a pass
    result.stdout.fnmatch_lines(["ERROR: zero vectors were executed against the candidate; this is never a pass"])
    reasons = {r["vector"]: r["unsupported"] for r in doc["results"]}
    assert set(reasons.values()) == {f"not implemented by the candidate: it has no {name}" for name in
                                     ("minimize", "get_gradients", "get_updates", "iterations", "get_config")} | {
        "not implemented by the candidate: NotImplementedError: TF 1's AdamOptimizer takes no clipnorm, clipvalue"}
    assert {r["verdict"] for r in doc["results"]} == {"unsupported"}
    assert "AttributeError" not in result.stdout.str()
