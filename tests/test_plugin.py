"""The pytest plugin, run through pytester: outcomes, messages, JSON, expectations, bad and hostile candidates."""

from __future__ import annotations

import json

import pytest

from conformance.report.document import document
from tests import candidates
from tests.helpers import CLIPPING_ITEMS, NO_CLIPPING, NUMPY_PROTOCOL, ROOT, all_vectors, unflagged_large

#: Options of the runs whose test reads no diagnosis: without it, a failing item costs no replays.
NO_DIAGNOSIS = "--conformance-diagnosis=off"


def _items(*, having: str = "", lacking: str = "\0") -> int:
    """Items a run collects without --scale (large vectors need it), of the vectors whose id has ``having`` and
    not ``lacking``."""
    return sum(len(v.dtypes) for v in unflagged_large() if having in v.id and lacking not in v.id)


@pytest.fixture
def run(pytester, kit_cache):
    pytester.syspathinsert(ROOT)

    def _run(*args):
        return pytester.runpytest(*kit_cache, *args)

    return _run


def _api_checks(run) -> int:
    """How many API checks the plugin collects (conformance/suite/test_api.py, parametrized)."""
    lines = run("--candidate=reference:Adam", "--collect-only", "-q").stdout.lines
    return sum("test_api.py::" in line for line in lines)


def test_reference_passes_everything(run, tmp_path):
    N_CHECKS = _api_checks(run)
    assert N_CHECKS > 0
    out = tmp_path / "r.json"
    result = run("--candidate=reference:Adam", "--level=core,api,tf2-detail,later", f"--conformance-json={out}")
    # Every item and check passes, but those the NumPy-port protocol cannot express (no autodiff, no tensors),
    n_items = _items() + len(CLIPPING_ITEMS)
    # and the clipping items (level later): reference.Adam is TF 2.0's port, which clips only in minimize (ADAM-TF2-CLIP-1).
    skipped = len(NUMPY_PROTOCOL) + len(CLIPPING_ITEMS)
    result.assert_outcomes(passed=n_items + N_CHECKS - skipped, skipped=skipped)
    doc = json.loads(out.read_text())
    assert doc["summary"] == {"pass": n_items + N_CHECKS - skipped, "unsupported": skipped}
    assert {r["vector"].removeprefix("api/"): r["unsupported"] for r in doc["results"]
            if r["verdict"] == "unsupported"} == {**NUMPY_PROTOCOL, **NO_CLIPPING}
    document({k: v for k, v in doc.items() if k not in ("format", "summary", "results")}, doc["results"])  # schema
    result.stdout.fnmatch_lines(["*adam-conformance: candidate reference:Adam (adapter numpy*", "*Adam conformance*"])


@pytest.mark.parametrize("variant,family,diagnosis", [
    ("EpsilonInsideSqrt", "discriminating", "EpsilonInsideSqrt"),
    ("NoBiasCorrection", "dense", "NoBiasCorrection"),
    ("LazySparse", "sparse", "LazySparse"),
    ("AmsgradIgnored", "amsgrad", "AmsgradIgnored"),
])
def test_wrong_ports_fail_and_are_diagnosed(run, variant, family, diagnosis):
    result = run(f"--candidate=reference.variants:{variant}", "-k", family)
    assert result.ret == 1
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) >= 1
    result.stdout.fnmatch_lines(["*out of bound from step*", "*ulps used / * allowed*", f"*diagnosis: matches {diagnosis} *"])


def test_failure_report_layout(run):
    result = run("--candidate=reference.variants:Algorithm1Epsilon", "-k", "epsilon-1 and float64")
    result.stdout.fnmatch_lines([
        "discriminating/epsilon-1 [[]float64] (ADAM-UPDATE-4): does not conform",
        "  trajectory mode: fails from step 1",
        "    a.variable out of bound from step 1: 6 / 6 elements (100.0%)",
        "      worst at index (*): * (candidate), * (expected)",
        "      abs *, rel *, * ulps used / * allowed",
        "  single-step mode: fails from step 1",
        "    a.variable out of bound from step 1: 6 / 6 elements (100.0%)",
        "*diagnosis: matches Algorithm1Epsilon (ADAM-UPDATE-4: epsilon on the bias-corrected root*) to 0 ulp*",
        "FAIL: discriminating/epsilon-1 [[]float64] from step 1: *",
        "    diagnosis: matches Algorithm1Epsilon (ADAM-UPDATE-4), 0 ulp",
    ])


@pytest.mark.parametrize("candidate,message", [
    ("no_such_module:Adam", "--candidate=no_such_module:Adam: cannot import module 'no_such_module'*"),
    ("reference:NoSuchClass", "--candidate=reference:NoSuchClass: module 'reference' has no attribute 'NoSuchClass'*"),
    ("tests.candidates:NOT_A_CLASS", "--candidate=tests.candidates:NOT_A_CLASS: int object is not a class or factory"),
    ("tests.candidates:BrokenConstructor", "--candidate=tests.candidates:BrokenConstructor: constructing it raised RuntimeError: no GPU found"),
    ("reference.Adam", "--candidate=reference.Adam: expected module:attr*"),
])
def test_bad_candidate_is_a_usage_error(run, candidate, message):
    result = run(f"--candidate={candidate}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_zero_vectors_executed_is_an_error(run):
    result = run("--candidate=reference:Adam", "-k", "no-such-vector")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*zero vectors were executed*"])


def test_hostile_candidates_fail_cleanly_and_the_rest_runs(run, tmp_path):
    out = tmp_path / "h.json"
    result = run("--candidate=tests.candidates:RaisesOnSparse", f"--conformance-json={out}", "-k", "sparse or dense",
                 NO_DIAGNOSIS)
    result.stdout.fnmatch_lines(["*the candidate raised RuntimeError at step 1: sparse gradients are not implemented*"])
    doc = json.loads(out.read_text())
    # What ``-k "sparse or dense"`` selects: items with a sparse gradient, and the purely dense rest.
    assert doc["summary"] == {"fail": _items(having="sparse"), "pass": _items(having="dense", lacking="sparse")}


def test_nan_is_reported_at_its_step(run):
    result = run("--candidate=tests.candidates:NaNAtStepTwo", "-k", "dense/basic and float32", NO_DIAGNOSIS)
    result.stdout.fnmatch_lines(["*step 2: a.variable: NaN location mismatch at index (0, 0)*"])


@pytest.mark.slow  # waits out its timeouts
def test_hanging_candidate_times_out(run, tmp_path):
    # The sparse items hang until released, so they time out whatever the limit; 5 s leaves the dense ones, done
    # in milliseconds, room on a loaded machine.
    out = tmp_path / "t.json"
    candidates.RELEASE.clear()
    try:
        result = run("--candidate=tests.candidates:HangsOnLargeVariables", "--conformance-timeout=5",
                     f"--conformance-json={out}", "-k", "sparse/duplicates-int32 or dense/basic", NO_DIAGNOSIS)
    finally:
        candidates.RELEASE.set()  # the threads the kit left behind end
    result.stdout.fnmatch_lines(["*did not finish within 5 s (--conformance-timeout)*"])
    doc = json.loads(out.read_text())
    assert doc["summary"] == {"fail": 2, "pass": 2}
    assert {(r["vector"], r["message"]) for r in doc["results"] if r["verdict"] == "fail"} == {
        ("sparse/duplicates-int32", "the candidate did not finish within 5 s (--conformance-timeout)")}
    # A hang is never the known divergence of an expectations entry: it still fails, not "known".
    exp = tmp_path / "exp.yaml"
    exp.write_text("candidates: []\ndivergences:\n  - {id: sparse/duplicates-int32, clause: ADAM-SPARSE-1, "
                   "reason: 'a divergence in the numbers'}\n", encoding="utf-8")
    candidates.RELEASE.clear()
    try:
        run("--candidate=tests.candidates:HangsOnLargeVariables", "--conformance-timeout=5", f"--expectations={exp}",
            f"--conformance-json={out}", "-k", "sparse/duplicates-int32", NO_DIAGNOSIS)
    finally:
        candidates.RELEASE.set()
    doc = json.loads(out.read_text())
    assert doc["summary"] == {"fail": 2}, doc["summary"]


def test_chatty_candidate_is_harmless(run):
    run("--candidate=tests.candidates:Chatty", "-k", "dense/basic").assert_outcomes(passed=2)


def test_wrong_slot_shape_is_named(run):
    result = run("--candidate=tests.candidates:FlatSlots", "-k", "dense/basic and float32", NO_DIAGNOSIS)
    result.stdout.fnmatch_lines(["*a.m: shape [[]6], expected [[]2, 3] (step 1)*"])


def test_frozen_callable_is_caught(run):
    result = run("--candidate=reference.variants:FrozenCallables", "-k", "callables/learning-rate and float64",
                 NO_DIAGNOSIS)
    result.stdout.fnmatch_lines(["*callable learning_rate was not called at step(s) [[]2, 3, 4, 5]*"])


@pytest.mark.parametrize("variant,failing", [
    ("WeightsByVariable", {"test_weights_order"}),
    # Every check that reads slot "m" fails on a port that names it "momentum"; the vectors cannot see names.
    ("KerasSlotNames", {"test_slot_names[adam]", "test_slot_names[amsgrad]", "test_get_slot_and_add_slot",
                        "test_weights_order", "test_set_weights_checks_length_and_shape", "test_checkpoint_resume[adam]",
                        "test_checkpoint_resume[amsgrad]", "test_from_config_round_trip", "test_iterations_counts_calls",
                        "test_gradients_are_not_modified", "test_apply_gradients_does_not_clip", "test_variables_is_weights",
                        "test_add_weight", "test_assigned_iterations_set_the_next_step"}),
    ("ConfigWithoutDecay", {"test_get_config_keys"}),
    ("MutatesGradient", {"test_gradients_are_not_modified"}),
    ("SetWeightsKeepsIterations", {"test_checkpoint_resume[adam]", "test_checkpoint_resume[amsgrad]"}),
])
def test_api_mutants_are_caught_by_the_checks(run, variant, failing):
    result = run(f"--candidate=reference.variants:{variant}", "-k", "test_", "-rf")
    failed = {line.split("::")[1].split(" ")[0] for line in result.stdout.lines if line.startswith("FAILED ")}
    assert failed == failing


def test_expectations_xfail_stale_and_unmatched(run, pytester):
    exp = pytester.path / "exp.yaml"
    exp.write_text(
        "candidates: []\n"
        "divergences:\n"
        "  - {id: 'sparse/duplicate-pair', clause: ADAM-SPARSE-1, reason: 'sums squares'}\n"
        "  - {id: 'dense/basic', dtypes: [float32], clause: ADAM-UPDATE-4, reason: 'claimed but passes'}\n"
        "  - {id: 'dense/no-such-vector', clause: ADAM-UPDATE-4, reason: 'matches nothing'}\n"
        "  - {id: 'property/test_x', clause: ADAM-UPDATE-4, reason: 'not stale: that tier did not run'}\n"
    )
    result = run("--candidate=reference.variants:SquaredDuplicates", f"--expectations={exp}", "-k",
                 "sparse/duplicate-pair or dense/basic", NO_DIAGNOSIS)
    result.assert_outcomes(xfailed=2, failed=1, passed=1)
    result.stdout.fnmatch_lines(["*PytestWarning: *exp.yaml: entry 'dense/no-such-vector' matches no collected item"])
    result.stdout.fnmatch_lines(["*[[]XPASS(strict)[]] ADAM-UPDATE-4: claimed but passes*",
                                 "*STALE EXPECTATION: dense/no-such-vector (ADAM-UPDATE-4)*"])
    assert "property/test_x" not in result.stdout.str()


def test_bad_expectations_file_is_a_usage_error(run, pytester):
    exp = pytester.path / "bad.yaml"
    exp.write_text("divergences:\n  - {id: 'x', clause: ADAM-UPDATE-4}\n")
    result = run("--candidate=reference:Adam", f"--expectations={exp}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {exp}: entry 0: field 'reason': a non-empty string is required"])


def test_vectors_option_adds_and_replaces(run, pytester):
    src = (ROOT / "vectors" / "defaults.yaml").read_text()
    (pytester.path / "mine").mkdir()
    (pytester.path / "mine" / "defaults.yaml").write_text(src)  # replaces the bundled family of that name
    result = run("--candidate=reference:Adam", f"--vectors={pytester.path / 'mine'}", "-k", "defaults and not recipes")
    result.assert_outcomes(passed=2)
    bad = pytester.path / "broken.yaml"
    bad.write_text("format: [\n")
    result = run("--candidate=reference:Adam", f"--vectors={bad}", "-k", "(defaults and not recipes) or load-error")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([f"*{bad}: malformed YAML at line *"])


def test_missing_vectors_path_is_a_usage_error(run):
    result = run("--candidate=reference:Adam", "--vectors=/no/such/place.yaml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --vectors=/no/such/place.yaml: no such file or folder"])


def test_without_candidate_the_plugin_stays_out_of_the_way(pytester):
    pytester.makepyfile("def test_ok():\n    assert True\n")
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_matrix_command(run, tmp_path, capsys):
    from conformance.cli import main

    out = tmp_path / "ref.json"
    run("--candidate=reference:Adam", f"--conformance-json={out}", "-k", "dense")
    assert main(["matrix", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| `reference:Adam` |" in table and "| candidate | core | api | tf2-detail |" in table
    assert "| candidate | dense |" in table


def test_single_step_names_a_state_that_does_not_load(run):
    """A port whose weights are grouped by variable cannot be given the oracle's state through set_weights."""
    result = run("--candidate=reference.variants:WeightsByVariable", "-k", "multivariable/two-shapes and float32")
    result.stdout.fnmatch_lines([
        "*single-step mode: fails from step 2",
        "*could not set the oracle's state before step 2: ValueError: set_weights: weight 2 has shape (4,), expected (2, 3)",
    ])
    assert "diagnosis" not in result.stdout.str(), "a state that did not load is not a numerical divergence"


def test_wrong_dtype_is_named(run):
    result = run("--candidate=reference.variants:Float32State", "-k", "dense/basic and float64", NO_DIAGNOSIS)
    result.stdout.fnmatch_lines(["*a.m: dtype float32, expected float64 (step 1; ADAM-DTYPE-1)*"])


def test_modes_can_be_chosen(run, tmp_path):
    out = tmp_path / "m.json"
    run("--candidate=reference:Adam", "--conformance-mode=single-step", f"--conformance-json={out}", "-k", "dense/basic")
    doc = json.loads(out.read_text())
    assert doc["mode"] == "single-step"
    assert {m for r in doc["results"] for m in r["modes"]} == {"single-step"}


def test_html_report_is_self_contained(run, tmp_path):
    page = tmp_path / "report.html"
    run("--candidate=reference.variants:Algorithm1Epsilon", f"--conformance-html={page}", "-k", "discriminating")
    text = page.read_text()
    assert text.startswith("<!doctype html>") and text.count("<svg") >= 12
    assert "<script" not in text and " src=" not in text and "href=" not in text  # nothing fetched, nothing run
    for needle in ("Failures", "diagnosis: matches Algorithm1Epsilon", "flush-to-zero", "Error against step"):
        assert needle in text, needle


def test_scale_vectors_are_deselected_unless_asked(run):
    result = run("--candidate=reference:Adam", "-k", "scale/sparse")
    assert result.parseoutcomes().get("passed", 0) == 0 and result.ret != 0  # nothing ran: never a pass
    result = run("--candidate=reference:Adam", "--scale", "-k", "scale/sparse")
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize("port,pick,line", [
    ("RebindsVariables", "dense/basic and float32", "FAIL: dense/basic [[]float32[]] from step 1: step 1: a.variable did not "
     "change although the oracle's did: apply_gradients must update every variable of the call in place, not rebind it or skip it (ADAM-UPDATE-4, ADAM-SHAPE-1)"),
    ("SwapsSlots", "dense/basic and float32", "FAIL: dense/basic [[]float32[]] from step 1: step 1: a.m holds v and a.v holds "
     "m: the slots are swapped (ADAM-API-SLOTS-1)"),
    ("StaleSlots", "dense/basic and float32", "FAIL: dense/basic [[]float32[]] from step 2: step 2: a.m and a.v did not change "
     "although a.variable took the oracle's step: get_slot returns a copy, not the slot (ADAM-API-SLOTS-2)"),
    ("StuckIterations", "dense/basic and float32", "FAIL: dense/basic [[]float32[]] from step 1: step 1: iterations did not "
     "advance (still 0): it counts apply_gradients calls (ADAM-ITER-1)"),
    ("MovesNoneGradients", "multivariable/none-gradient and float32", "FAIL: multivariable/none-gradient [[]float32[]] from "
     "step 2: step 2: b.variable changed at a step whose gradient was None or absent: such a variable is left alone (ADAM-ITER-2)"),
])
def test_common_port_mistakes_are_named_first(run, port, pick, line):
    result = run(f"--candidate=tests.candidates:{port}", "-k", pick)
    assert result.ret == 1
    result.stdout.fnmatch_lines([line])


def test_a_candidate_that_crashes_its_interpreter_fails_only_those_items_under_isolate(run, tmp_path):
    out = tmp_path / "c.json"
    picked = ("sparse/not-lazy", "sparse/duplicate-pair", "dense/basic")  # 3, 2 and 5 steps: one of them crashes
    result = run("--candidate=tests.candidates:CrashesOnSparse", "--isolate", f"--conformance-json={out}", "-k",
                 " or ".join(picked))
    doc = json.loads(out.read_text())
    chosen = [v for v in all_vectors() if v.id in picked]
    assert result.ret == 1 and len(doc["results"]) == sum(len(v.dtypes) for v in chosen)  # the report holds every item
    failed = [r for r in doc["results"] if r["verdict"] == "fail"]
    long_sparse = {f"{v.id}[{d}]" for v in chosen if "sparse" in v.id and len(v.steps) >= 3 for d in v.dtypes}
    assert long_sparse and {f"{r['vector']}[{r['dtype']}]" for r in failed} == long_sparse
    assert {r["message"] for r in failed} == {"the candidate crashed the process: SIGSEGV at step 3 (--isolate: the next "
                                              "item runs in a fresh process)"}
    result.stdout.fnmatch_lines(["adam-conformance: device cpu; execution eager (*); mode both; timeout 120 s; isolated "
                                 "(every call into the candidate in a child process)"])


def test_os_exit_is_named_with_its_status_under_isolate(run):
    result = run("--candidate=tests.candidates:ExitsOnAmsgrad", "--isolate", "-k", "amsgrad/first-step")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["FAIL: amsgrad/first-step [[]float32[]]: the candidate crashed the process: exit status 7 at step 1*"])


def test_a_run_cut_short_says_by_which_item(pytester, monkeypatch, kit_cache):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    # In a subprocess: in process, pytester hands the KeyboardInterrupt on to this very run.
    result = pytester.runpytest_subprocess(*kit_cache, "--candidate=tests.candidates:InterruptsOnSparse",
                                           "-k", "sparse or dense", "--conformance-timeout=0")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["ERROR: the run was cut short while vectors/multivariable.yaml::multivariable/sparse-and-dense"
                                 "[[]float32[]] was running; the items after it did not run*"])


def test_under_xdist_an_item_whose_worker_crashed_is_still_in_the_report(run, tmp_path):
    out = tmp_path / "x.json"
    run("--candidate=tests.candidates:CrashesOnSparse", "-n", "1", f"--conformance-json={out}", "-k",
        "sparse/not-lazy or sparse/duplicate-pair or dense/basic")
    doc = json.loads(out.read_text())
    assert len(doc["results"]) == 6 and doc["summary"] == {"fail": 2, "pass": 4}
    assert {r["message"].split(" crashed while running ")[1] for r in doc["results"] if r["verdict"] == "fail"} == {
        "'vectors/sparse.yaml::sparse/not-lazy[float32]'", "'vectors/sparse.yaml::sparse/not-lazy[float64]'"}


def test_unknown_execution_mode_is_a_usage_error(run):
    result = run("--candidate=reference:Adam", "--execution=xla")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --execution=xla: the numpy adapter has no such execution mode (it has: eager)"])


def test_execution_mode_is_recorded_and_scopes_expectations(run, pytester, tmp_path):
    exp = pytester.path / "exp.yaml"
    exp.write_text(
        "candidates: []\n"
        "divergences:\n"
        "  - {id: 'kernels/strided', executions: [fused], clause: ADAM-SHAPE-1, reason: 'only in another mode'}\n"
        "  - {id: 'kernels/empty', executions: [eager], clause: ADAM-SHAPE-1, reason: 'this mode'}\n"
    )
    out = tmp_path / "r.json"
    result = run("--candidate=reference.variants:FlatCopyUpdate", "--execution=eager", f"--expectations={exp}",
                 f"--conformance-json={out}", "-k", "(kernels/strided or kernels/empty) and not strided-half", NO_DIAGNOSIS)
    # The entry for another mode is left out (no "matches no item" warning, strided fails); the one for eager is
    # stale: FlatCopyUpdate updates contiguous variables correctly.
    result.assert_outcomes(failed=4)
    assert "only in another mode" not in result.stdout.str()
    result.stdout.fnmatch_lines(["STALE: kernels/empty [[]float32[]]*", "FAIL: kernels/strided [[]float32[]]*"])
    doc = json.loads(out.read_text())
    assert (doc["execution"], doc["execution_text"]) == ("eager", "the candidate's step called directly")
    result.stdout.fnmatch_lines(["adam-conformance: device cpu; execution eager (the candidate's step called directly)*"])


@pytest.mark.parametrize("field, message", [
    ("executions: fused", "field 'executions': a list of execution mode names is required"),
    ("backends: torch", "field 'backends': a list of Keras 3 backend names is required"),
    ("backends: [troch]", "field 'backends': unknown backend 'troch' (known: tensorflow, jax, torch, numpy, openvino)"),
    ("checkpoint: model-keras", "field 'checkpoint': a list of --checkpoint format names is required"),
])
def test_bad_scope_field_is_a_usage_error(run, pytester, field, message):
    exp = pytester.path / "bad.yaml"
    exp.write_text(f"divergences:\n  - {{id: 'x', clause: ADAM-UPDATE-4, reason: r, {field}}}\n")
    result = run("--candidate=reference:Adam", f"--expectations={exp}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {exp}: entry 0 ('x'): {message}"])


def test_entries_scoped_to_modes_and_backends(tmp_path):
    from conformance import expectations

    path = tmp_path / "e.yaml"
    path.write_text("divergences:\n"
                    "  - {id: a, clause: ADAM-UPDATE-4, reason: r}\n"
                    "  - {id: b, clause: ADAM-UPDATE-4, reason: r, backends: [torch]}\n"
                    "  - {id: c, clause: ADAM-UPDATE-4, reason: r, executions: [jit], backends: [jax, torch]}\n")
    exp = expectations.load(path)
    kept = {(execution, backend): [e.id for e in exp.for_run(execution, backend).entries]
            for execution in ("eager", "jit") for backend in ("jax", "torch", None)}
    assert kept == {("eager", "jax"): ["a"], ("eager", "torch"): ["a", "b"], ("eager", None): ["a"],
                    ("jit", "jax"): ["a", "c"], ("jit", "torch"): ["a", "b", "c"], ("jit", None): ["a"]}


def test_entries_scoped_to_checkpoint_formats(tmp_path):
    """An entry with ``checkpoint:`` applies to a --checkpoint run in one of those formats only, never to a run
    without --checkpoint; an entry without it applies to every run."""
    from conformance import expectations

    path = tmp_path / "e.yaml"
    path.write_text("divergences:\n"
                    "  - {id: a, clause: ADAM-UPDATE-4, reason: r}\n"
                    "  - {id: b, clause: ADAM-UPDATE-4, reason: r, checkpoint: [model-keras, model-savedmodel]}\n")
    exp = expectations.load(path)
    kept = {fmt: [e.id for e in exp.for_run("eager", None, None, fmt).entries]
            for fmt in (None, "checkpoint", "model-keras", "model-savedmodel")}
    assert kept == {None: ["a"], "checkpoint": ["a"], "model-keras": ["a", "b"], "model-savedmodel": ["a", "b"]}


def test_the_verified_vector_cache_remembers_large_vectors_checked(pytester, tmp_path, monkeypatch):
    """A session that checked a large vector's digests records it in pytest's cache, beside its file's sha256, and
    the next session hashes only the generated inputs, not the oracle's states."""
    import copy

    from conformance.load import vector_format
    from conformance.load.files import load_file
    from conformance.load.vector_format import content_hash
    from tests.helpers import small_scale
    from vectors.generate import family_document, render

    pytester.syspathinsert(ROOT)
    record = copy.deepcopy(small_scale(digest=True)[0].record)
    record["id"] = "bigish/dense"
    record["sha256"] = content_hash(record)
    path = tmp_path / "bigish.yaml"
    path.write_text(render({**family_document("dense"), "family": "bigish", "vectors": [record]}), encoding="utf-8")
    (loaded,), _ = load_file(path)
    hashed = []
    real = vector_format.array_digest
    monkeypatch.setattr(vector_format, "array_digest", lambda x: hashed.append(1) or real(x))
    per_session = []
    for _ in range(2):
        hashed.clear()
        pytester.runpytest("--candidate=reference:Adam", f"--vectors={path}", "--scale", "-k", "bigish").assert_outcomes(
            passed=len(record["dtypes"]))
        per_session.append(len(hashed))
        (keys,) = [json.loads(p.read_text()) for p in (pytester.path / ".pytest_cache" / "v" / "adam-conformance"
                                                      / "verified").iterdir()]
        assert loaded.source in keys and f"{loaded.source}:bigish/dense" in keys
    inputs = len(record["dtypes"]) * (1 + len(record["steps"]))  # each item makes its initial values and gradients
    states = 3 * len(record["steps"])  # variable, m and v after every step, hashed by the first item only
    assert per_session == [inputs + states, inputs]


@pytest.mark.parametrize("option", ["--world-size=3", "--split=one-rank"])
def test_distributed_options_on_one_device_are_a_usage_error(run, option):
    result = run("--candidate=reference:Adam", option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {option.split('=')[0]}: applies to distributed execution modes only; "
                                 "--execution=eager runs on one device"])


@pytest.mark.parametrize("value", ["0", "two"])
def test_a_world_size_is_a_whole_number_of_ranks(run, value):
    result = run("--candidate=reference:Adam", f"--world-size={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--world-size: not a number of ranks: '{value}' (write --world-size=2)"])
