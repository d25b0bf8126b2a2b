"""``--isolate`` covers every call into the candidate (API checks included), and ``--conformance-json`` streams its
records to PATH.partial.jsonl as the items finish, so that a crash without ``--isolate`` loses one item."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ROOT

CRASH = "--candidate=tests.crash_ports:SegfaultsAfterResume"
#: A few vector items and API checks around the crashing one (test_checkpoint_resume[adam] and [amsgrad]).
PICK = "dense/basic or test_slot_names or test_checkpoint_resume or test_iterations_counts_calls"


@pytest.fixture
def run(pytester: pytest.Pytester, kit_cache: list[str]) -> Any:
    """The kit run in process (its --isolate child is a process of its own)."""
    pytester.syspathinsert(ROOT)
    return lambda *args: pytester.runpytest(*kit_cache, *args)


def _verdicts(path: Path) -> dict[str, tuple]:
    """node id -> (verdict, unsupported reason) of a results document."""
    return {r["nodeid"]: (r["verdict"], r.get("unsupported")) for r in json.loads(path.read_text())["results"]}


def test_a_crash_inside_an_api_check_fails_that_check_alone_under_isolate(run, tmp_path):
    out = tmp_path / "c.json"
    result = run(CRASH, "--isolate", f"--conformance-json={out}", "-k", PICK)
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # not 139: pytest itself was not killed
    results = json.loads(out.read_text())["results"]
    collected = [line for line in run(CRASH, "--collect-only", "-q", "-k", PICK).stdout.lines if "::" in line]
    assert sorted(r["nodeid"] for r in results) == sorted(collected)  # every item is in the report
    failed = {r["vector"]: r["message"] for r in results if r["verdict"] == "fail"}
    assert failed == {f"api/test_checkpoint_resume[{k}]": f"the candidate crashed the process: SIGSEGV in "
                      f"api/test_checkpoint_resume[{k}] (--isolate: the next item runs in a fresh process)"
                      for k in ("adam", "amsgrad")}
    assert {r["verdict"] for r in results if r["vector"] not in failed} == {"pass"}
    result.stdout.fnmatch_lines(["FAIL: api/test_checkpoint_resume[[]adam[]] [[]-[]]: the candidate crashed the process: "
                                 "SIGSEGV in api/test_checkpoint_resume[[]adam[]]*"])
    assert not Path(f"{out}.partial.jsonl").exists()  # the whole document was written: the stream is gone


@pytest.mark.parametrize("candidate", ["reference:Adam",  # the others in the slow tier: each run twice, some seconds
                                       pytest.param("tests.candidates:StuckIterations", marks=pytest.mark.slow),
                                       pytest.param("tests.crash_ports:LacksOptionalApi", marks=pytest.mark.slow)])
def test_api_checks_have_the_same_verdicts_with_and_without_isolate(run, tmp_path, candidate):
    plain, isolated = tmp_path / "plain.json", tmp_path / "isolated.json"
    run(f"--candidate={candidate}", f"--conformance-json={plain}", "-k", "test_api")
    run(f"--candidate={candidate}", "--isolate", f"--conformance-json={isolated}", "-k", "test_api")
    verdicts = _verdicts(plain)
    assert len(verdicts) > 30 and _verdicts(isolated) == verdicts
    found = {v for v, _ in verdicts.values()}
    # Each candidate exercises what it is here for: passes, failures, unsupported through a missing or unimplemented method.
    assert {"reference:Adam": {"pass", "unsupported"}, "tests.candidates:StuckIterations": {"pass", "fail", "unsupported"},
            "tests.crash_ports:LacksOptionalApi": {"pass", "unsupported"}}[candidate] == found
    if candidate.endswith("LacksOptionalApi"):
        reasons = {u for v, u in verdicts.values() if v == "unsupported"}
        assert any("get_slot_names" in r for r in reasons) and any("NotImplementedError" in r for r in reasons)


def test_property_checks_run_in_the_child_under_isolate(run, tmp_path):
    out = tmp_path / "p.json"
    result = run("--candidate=reference:Adam", "--isolate", "--tier=property", "--property-examples=3",
                 "--hypothesis-seed=1", f"--conformance-json={out}", "-k", "agrees_with_oracle or sparse_equals_dense")
    assert result.ret == pytest.ExitCode.OK
    results = json.loads(out.read_text())["results"]
    assert {r["vector"]: r["verdict"] for r in results} == {"property/test_agrees_with_oracle": "pass",
                                                            "property/test_sparse_equals_dense": "pass"}
    assert all(r["examples"] >= 1 for r in results)  # the child's tracker came back to the record


def test_without_isolate_the_stream_keeps_every_item_finished_before_the_crash(pytester, monkeypatch, kit_cache, tmp_path):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    out = tmp_path / "s.json"
    order = [line for line in pytester.runpytest_subprocess(*kit_cache, CRASH, "--collect-only", "-q", "-k", PICK).stdout.lines
             if "::" in line]
    # In a subprocess: the segfault ends that interpreter, as it would a user's run.
    result = pytester.runpytest_subprocess(*kit_cache, CRASH, f"--conformance-json={out}", "-k", PICK)
    assert result.ret not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED) and not out.exists()
    lines = Path(f"{out}.partial.jsonl").read_text().splitlines()
    crashed = order.index("suite/test_api.py::test_checkpoint_resume[adam]")
    assert crashed > 2 and [json.loads(line)["nodeid"] for line in lines] == order[:crashed]
