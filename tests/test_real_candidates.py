"""The suite against the real frameworks: every result is a pass, an explained divergence or unsupported,
and the verdicts are those of the committed summaries (docs/results/*.summary.json) behind the README's matrix
and the tables of docs/reading-results.md."""

from __future__ import annotations

import json

import pytest

from conformance.report import summary
from conformance.report.tables import diagnoses, matrix, tightness, unsupported_notes
from tests.helpers import ROOT
from tests.helpers import need
from tests.real_runs import CI_SELECTION, RUNS, ci_selection, run, verdicts

RESULTS = ROOT / "docs" / "results"
README = (ROOT / "README.md").read_text(encoding="utf-8")
READING = (ROOT / "docs" / "reading-results.md").read_text(encoding="utf-8")  # tightness and diagnoses


@pytest.mark.slow
@pytest.mark.parametrize("name", list(RUNS))
def test_real_candidate(name, tmp_path, kit_cache):
    need(RUNS[name][3])
    out = tmp_path / f"{name}.json"
    select = ci_selection(name)
    proc = run(name, out, tmp_path, select=select, cache=kit_cache, diagnosis=False)  # verdicts are compared
    assert out.exists(), proc.stdout[-2000:] + proc.stderr[-2000:]
    doc = json.loads(out.read_text())
    unexplained = [f"{r['nodeid']}: {r['verdict']}: {r.get('message')}" for r in doc["results"]
                   if r["verdict"] in ("fail", "stale", "error")]
    assert unexplained == [], "\n".join(unexplained)
    assert proc.returncode == 0, proc.stdout[-3000:]
    committed = verdicts(RESULTS / f"{name}.summary.json")
    if select is not None:  # some of the row's items: each as the whole row's run found it
        assert verdicts(out) and set(verdicts(out)) <= set(committed), sorted(set(verdicts(out)) - set(committed))
        if name not in CI_SELECTION:  # a sampled row: every item that does not pass ran again
            assert not {k for k, v in committed.items() if v != "pass"} - set(verdicts(out))
        committed = {k: v for k, v in committed.items() if k in verdicts(out)}
    assert verdicts(out) == committed, \
        "verdicts differ from docs/results: regenerate them (python -m tests.real_runs docs/results)"
    assert verdicts(out) == {r["nodeid"]: r["verdict"] for r in summary.summarize(doc)["results"]}
    if doc.get("world_size"):
        # A distributed mode: which items differ from one device (or rank from rank) is what the README says.
        committed = json.loads((RESULTS / f"{name}.summary.json").read_text(encoding="utf-8"))
        differ = sorted(r["nodeid"] for r in doc["results"] if r.get("twin") or r.get("replicas"))
        ran = verdicts(out)  # a CI_SELECTION run: the committed row's items that it ran
        assert differ == sorted(r["nodeid"] for r in committed["results"]
                                if (r.get("twin") or r.get("replicas")) and r["nodeid"] in ran)
    if name == "2-tf_keras-legacy":
        # The bound is no looser than it must be: TF 2.0's own code line uses a real share of it in float32.
        shares = [float(r["max_ratio"]) for r in doc["results"] if r.get("dtype") == "float32" and r["verdict"] == "pass"]
        assert max(shares) >= 0.1


@pytest.mark.slow
@pytest.mark.parametrize("candidate,module", [("reference:Adam", "numpy"), ("tf_keras.optimizers.legacy:Adam", "tf_keras")])
def test_property_tier_with_a_fixed_seed(candidate, module, pytester, tmp_path):
    need(module)
    out = tmp_path / "p.json"
    pytester.syspathinsert(ROOT)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--candidate={candidate}", "--tier=property",
                                           "--hypothesis-seed=0", "--property-examples=25", f"--conformance-json={out}")
    records = {r["vector"]: r for r in json.loads(out.read_text())["results"]}
    assert result.ret == 0, result.stdout.str()[-3000:]
    assert len(records) == 6 and {r["verdict"] for r in records.values()} == {"pass"}
    assert all(r["examples"] >= 25 for r in records.values())


def test_readme_matrix_is_built_from_the_committed_results():
    paths = sorted(p for p in RESULTS.glob("*.summary.json") if not p.name.startswith("gpu-"))  # the CPU rows
    assert [p.name.removesuffix(".summary.json") for p in paths] == sorted(RUNS)
    assert matrix(paths) in README
    assert tightness(paths) in READING
    assert diagnoses(paths) in READING


def test_docs_results_holds_only_summaries():
    """Full results documents are artefacts of a run (results/real-runs/), not committed."""
    files = sorted(p.name for p in RESULTS.iterdir())
    assert files and all(f.endswith(".summary.json") for f in files), files
    for p in RESULTS.iterdir():
        assert json.loads(p.read_text(encoding="utf-8"))["format"] == summary.FORMAT
        assert p.stat().st_size < 100_000, f"{p.name}: a summary should be small"


def _full_document() -> dict:
    """A full results document with one item of every verdict, a diagnosis and an unsupported reason."""
    def item(vid, verdict, **extra):
        family = vid.split("/")[0]
        return {"nodeid": f"vectors/{family}.yaml::{vid}[float32]", "vector": vid, "family": family, "level": "core",
                "dtype": "float32", "verdict": verdict, "clauses": ["ADAM-UPDATE-4"], "device": "cpu",
                "duration_s": 0.01, "modes": {"trajectory": {"curve": {"a.variable": [[0.1, 1.0]] * 50}}}, **extra}
    diagnosis = {"kind": "variant", "variant": "Algorithm1Epsilon", "clause": "ADAM-UPDATE-4", "matches": True,
                 "alternatives": [], "ulps": 1.0, "ratio": 0.1, "spec_ratio": 9.0, "seconds": 0.2, "mode": "single-step",
                 "description": "Algorithm1Epsilon (ADAM-UPDATE-4: ...)", "text": "matches Algorithm1Epsilon ...",
                 "localisation": {"clause": "ADAM-UPDATE-4", "conforming": ["m", "v"], "step": 1, "tensor": "variable",
                                  "mode": "single-step", "text": "departs at ADAM-UPDATE-4 ...", "structural": []}}
    results = [item("dense/a", "pass", max_ratio=0.25), item("dense/b", "pass", max_ratio=0.5),
               item("discriminating/c", "xfail", max_ratio=7.0, message="a.variable out of bound", diagnosis=diagnosis,
                    expected_divergence="ADAM-UPDATE-4: epsilon placement"),
               item("discriminating/d", "fail", max_ratio=3.0, message="a.variable out of bound", diagnosis=diagnosis),
               item("sparse/e", "unsupported", unsupported="refuses sparse gradients"),
               item("sparse/f", "unsupported", message="not implemented by the candidate: sparse")]
    return {"format": "adam-conformance-results/1", "candidate": "torch.optim:Adam", "adapter": "torch", "raw": True,
            "execution": "fused", "device": "cpu", "versions": {"torch": "2"}, "environment": {"python": "3"},
            "capabilities": {"absent": {"state loading": "no set_weights"}, "not_exposed": ["m"]},
            "summary": {"pass": 2}, "timing": {"total_s": 1.0}, "vector_set": {"sha256": "ab", "vectors": ["x.yaml"] * 20},
            "results": results}


def test_a_summary_gives_the_tables_and_verdicts_of_its_full_document(tmp_path):
    doc = _full_document()
    full, brief = tmp_path / "full.json", tmp_path / "row.summary.json"
    full.write_text(json.dumps(doc), encoding="utf-8")
    summary.write(brief, doc)
    small = json.loads(brief.read_text(encoding="utf-8"))
    assert small["format"] == summary.FORMAT and small == summary.summarize(doc)
    assert verdicts(full) == verdicts(brief)
    for table in (matrix, tightness, diagnoses):
        assert table([full]) == table([brief])
    assert unsupported_notes([doc]) == unsupported_notes([small])
    assert "single-step mode (no state loading)" in unsupported_notes([small])[0]
    assert "`torch.optim:Adam (raw) fused`" in matrix([brief])
    item = small["results"][3]
    assert set(item) == {"nodeid", "verdict", "family", "level", "dtype", "max_ratio", "message", "diagnosis"}
    assert item["diagnosis"]["text"] == "matches Algorithm1Epsilon (ADAM-UPDATE-4), 1 ulp"
    assert "modes" not in brief.read_text(encoding="utf-8") and summary.summarize(small) is small
