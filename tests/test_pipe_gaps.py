"""What real ports taught about the pipe protocol: each gap it left, shown by a port that stumbles into it.

The ports are ``tests/gap_ports.py``: the oracle's server with one gap each.
"""

from __future__ import annotations

import shlex
import sys

import pytest

from conformance.adapters.pipe import SCHEMA, VALIDATORS, PipeAdapter
from conformance.features import Feature
from tests.helpers import ROOT

GAP = f"{shlex.quote(sys.executable)} tests/gap_ports.py"
ORACLE = f"{shlex.quote(sys.executable)} -m conformance.pipe_port"


@pytest.fixture
def run(pipe_run):
    return pipe_run


def _verdicts(doc: dict) -> dict[str, str]:
    return {f"{r['vector']}[{r['dtype'] or '-'}]": r["verdict"] for r in doc["results"]}


# --- A.2: P-5's all-null apply is sent, and a port that accepts it fails with one line naming P-5 ---------------


def test_a_port_that_accepts_an_all_null_apply_fails_naming_p5(run):
    result, doc = run(f"--candidate-command={GAP} --gap=accepts-all-null", "-q", "-k", "all_null or dense/basic")
    assert result.ret == 1
    assert _verdicts(doc) == {"api/test_all_null_apply_is_an_error[-]": "fail", "dense/basic[float32]": "pass",
                              "dense/basic[float64]": "pass"}
    (record,) = [r for r in doc["results"] if r["family"] == "api"]
    assert record["clauses"] == ["ADAM-ITER-3"] and record["level"] == "core"
    result.stdout.fnmatch_lines(["FAIL: api/test_all_null_apply_is_an_error [[]-[]]: P-5: the port answered 'ok' to an "
                                 "'apply' whose gradients are all null; it must answer status 'error' (ADAM-ITER-3*"])
    assert "Traceback" not in result.stdout.str()


def test_the_all_null_apply_passes_for_a_port_that_answers_error_and_is_not_collected_in_process(run):
    piped, pdoc = run(f"--candidate-command={ORACLE}", "-k", "all_null")
    assert piped.ret == 0 and _verdicts(pdoc) == {"api/test_all_null_apply_is_an_error[-]": "pass"}
    direct, ddoc = run("--candidate=reference:Adam", "-k", "all_null or all_none")
    # In process the same clause is the API check test_all_none_gradients_raise; the pipe's check is not collected.
    assert direct.ret == 0 and _verdicts(ddoc) == {"api/test_all_none_gradients_raise[-]": "pass"}


# --- A.3: slots belong to the name; the kit turns the order of the keys and leaves variables out --------------


def test_a_port_that_binds_slots_by_position_fails(run):
    result, doc = run(f"--candidate-command={GAP} --gap=positional", "-k", "multivariable/two-shapes")
    assert result.ret == 1
    assert set(_verdicts(doc).values()) == {"fail"}  # with the keys always in creation order it would pass


# --- A.4: a library whose names are global to its process needs names made unique by the driver --------------


@pytest.mark.parametrize("gap,ret", [("global-names", 1), ("global-names-prefixed", 0)])
def test_names_global_to_the_process_clash_unless_the_driver_prefixes_them(run, gap, ret):
    result, doc = run(f"--candidate-command={GAP} --gap={gap}", "-k", "dense/basic")
    assert result.ret == ret, result.stdout.str()[-1500:]
    assert set(_verdicts(doc).values()) == {"fail" if ret else "pass"}


# --- A.1: a driver hands numbers to its library unchanged; obeying P-4's rules itself would hide a failure ------


def test_a_driver_that_applies_the_spec_to_the_numbers_hides_the_librarys_failure(run):
    faithful, fdoc = run(f"--candidate-command={ORACLE} reference.variants:EpsilonZeroKept", "-k", "tf2/epsilon-zero")
    assert faithful.ret == 1 and set(_verdicts(fdoc).values()) == {"fail"}
    hiding, hdoc = run(f"--candidate-command={GAP} --gap=obeying-p4 reference.variants:EpsilonZeroKept", "-k",
                       "tf2/epsilon-zero")
    assert hiding.ret == 0 and set(_verdicts(hdoc).values()) == {"pass"}  # what the spec now tells drivers not to do
    text = (ROOT / "spec/pipe-protocol.md").read_text(encoding="utf-8")
    assert "A driver hands every number to its library exactly as it arrives" in text


# --- A.5: which hyperparameters may be callables --------------------------------------------------------------


def _adapter_with(callables) -> PipeAdapter:
    adapter = PipeAdapter(["unused"])
    adapter.hello = {"supports": {"dtypes": ["float32", "float64"], "amsgrad": True, "sparse": True,
                                  "state_loading": True, "slots": ["m", "v"], "iterations": True,
                                  "callables": callables, "schedule": True, "decay": True}}
    return adapter


@pytest.mark.parametrize("flag,lacking", [
    (True, set()),
    (False, {"learning_rate", "beta_1", "beta_2", "epsilon"}),
    (["learning_rate", "beta_1"], {"beta_2", "epsilon"}),
    ([], {"learning_rate", "beta_1", "beta_2", "epsilon"}),
])
def test_callables_is_true_false_or_the_list_of_those_that_may_be(flag, lacking):
    response = {"id": 1, "status": "ok", "protocol": "adam-pipe/1", "name": "p", "version": "1",
                "supports": _adapter_with(flag).hello["supports"]}
    assert list(VALIDATORS["hello"]["ok"].iter_errors(response)) == []
    missing = _adapter_with(flag).lacking()
    assert {f.value.removeprefix("callable ") for f in missing if f.value.startswith("callable ")} == lacking
    for name in lacking:
        assert missing[Feature.callable(name)] == f"the port does not support a callable {name} (hello)"


def test_a_callables_list_naming_no_hyperparameter_violates_the_schema():
    response = {"id": 1, "status": "ok", "protocol": "adam-pipe/1", "name": "p", "version": "1",
                "supports": {**_adapter_with(True).hello["supports"], "callables": ["momentum"]}}
    assert list(VALIDATORS["hello"]["ok"].iter_errors(response))
    assert SCHEMA["$defs"]["hello_response"]["oneOf"][0]["properties"]["supports"]["properties"]["callables"]


def test_a_port_listing_some_callables_runs_those_and_the_rest_are_unsupported(run):
    result, doc = run(f"--candidate-command={GAP} --gap=callables=learning_rate,beta_1", "-k", "callables/")
    assert result.ret == 0
    verdicts = _verdicts(doc)
    assert {i for i, v in verdicts.items() if v == "pass"} == {
        f"callables/{v}[{d}]" for v in ("learning-rate", "beta-1") for d in ("float32", "float64")}
    unsupported = {r["unsupported"] for r in doc["results"] if r["verdict"] == "unsupported"}
    assert unsupported == {"the port does not support a callable beta_2 (hello)"}  # beta-2 and all-three
    result.stdout.fnmatch_lines(["verdict: conforms to core on 4 items; unsupported: the port does not support a "
                                 "callable beta_2 (hello) (4 items)"])


# --- issue 24.3: a port without schedules runs the constant recipes, and may take a schedule per step -----------

WARM_UP = {"recipes/llm-float32[float32]", "recipes/llm-bfloat16[bfloat16]", "recipes/bert-float32[float32]",
           "recipes/keras-defaults-float32[float32]"}
CONSTANT = {i.replace("[", "-constant[") for i in WARM_UP}


def test_a_port_without_schedules_runs_the_constant_recipes(run):
    result, doc = run(f"--candidate-command={GAP} --gap=no-schedule", "-k", "recipes/")
    assert result.ret == 0, result.stdout.str()[-1500:]
    verdicts = _verdicts(doc)
    assert {i for i, v in verdicts.items() if v == "pass"} == CONSTANT
    assert {i for i, v in verdicts.items() if v == "unsupported"} == WARM_UP
    assert {r["unsupported"] for r in doc["results"] if r["verdict"] == "unsupported"} == {
        "the port does not support schedule (hello)"}


def test_a_port_that_says_per_step_gets_each_calls_learning_rate_and_the_header_says_so(run):
    result, doc = run(f"--candidate-command={GAP} --gap=per-step-schedule", "-k",
                      "schedules/learning-rate-schedule or recipes/bert-float32")
    assert result.ret == 0, result.stdout.str()[-1500:]
    assert _verdicts(doc) == {"schedules/learning-rate-schedule[float32]": "pass",
                              "schedules/learning-rate-schedule[float64]": "pass",
                              "recipes/bert-float32[float32]": "pass", "recipes/bert-float32-constant[float32]": "pass"}
    assert any("per-step" in t for t in doc["translations"])
    result.stdout.fnmatch_lines(["adam-conformance: translation: a learning-rate schedule is evaluated by the kit and "
                                 "sent as the learning rate of each 'apply'*"])


def test_a_port_that_says_per_step_but_keeps_its_first_learning_rate_fails(run):
    # The per-step values are what is judged: a port that ignores them fails the schedule's items, not the others.
    result, doc = run(f"--candidate-command={GAP} --gap=per-step-ignored", "--conformance-diagnosis=off", "-k",
                      "schedules/learning-rate-schedule or recipes/bert-float32")
    assert result.ret == 1
    assert _verdicts(doc) == {"schedules/learning-rate-schedule[float32]": "fail",
                              "schedules/learning-rate-schedule[float64]": "fail",
                              "recipes/bert-float32[float32]": "fail", "recipes/bert-float32-constant[float32]": "pass"}


@pytest.mark.parametrize("flag,lacking", [(True, False), (False, True), ("per-step", False)])
def test_schedule_is_true_false_or_per_step(flag, lacking):
    adapter = _adapter_with(True)
    adapter.hello["supports"]["schedule"] = flag
    response = {"id": 1, "status": "ok", "protocol": "adam-pipe/1", "name": "p", "version": "1",
                "supports": adapter.hello["supports"]}
    assert list(VALIDATORS["hello"]["ok"].iter_errors(response)) == []
    assert (Feature.SCHEDULE in adapter.lacking()) == lacking
    response["supports"] = {**response["supports"], "schedule": "per-call"}
    assert list(VALIDATORS["hello"]["ok"].iter_errors(response))


# --- A.6: the port's name and version are on screen with -q ----------------------------------------------------


def test_the_ports_name_and_version_are_shown_with_q(run):
    result, _ = run(f"--candidate-command={ORACLE}", "-q", "-k", "dense/basic")
    assert result.ret == 0
    assert not [line for line in result.stdout.lines if line.startswith("adam-conformance:")]  # -q: no header
    result.stdout.fnmatch_lines(["candidate * via the pipe adapter; port conformance.pipe_port reference:Adam 1"])
