"""``pytest -n 2`` (pytest-xdist) gives the same results as a serial run."""

from __future__ import annotations

import json

import pytest

from tests.helpers import ROOT, need


def _results(pytester, tmp_path, kit_cache, name, *extra):
    out = tmp_path / f"{name}.json"
    pytester.syspathinsert(ROOT)
    result = pytester.runpytest_subprocess(*kit_cache, "--candidate=reference.variants:SquaredDuplicates",
                                           f"--conformance-json={out}", *extra)
    doc = json.loads(out.read_text())
    drop = ("duration_s", "candidate_seconds")
    for r in doc["results"]:
        (r.get("diagnosis") or {}).pop("seconds", None)  # how long the diagnosis took: timing, like the two above
    return result, doc, sorted((json.dumps({k: v for k, v in r.items() if k not in drop}, sort_keys=True)
                                for r in doc["results"]))


@pytest.mark.slow  # two whole runs, one of them on two workers
def test_parallel_run_matches_serial_run(pytester, tmp_path, kit_cache):
    need("xdist")
    serial, doc_s, records_s = _results(pytester, tmp_path, kit_cache, "serial")
    parallel, doc_p, records_p = _results(pytester, tmp_path, kit_cache, "parallel", "-n", "2")
    assert serial.ret == parallel.ret == 1  # the wrong port fails, both ways
    assert doc_s["summary"] == doc_p["summary"] and doc_s["summary"]["fail"] > 0
    assert records_s == records_p
