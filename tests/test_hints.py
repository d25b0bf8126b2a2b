"""Port-mistake hints are named only on evidence, and a failure prints at most a screenful (issue 23).

The ports are in tests/hint_ports.py; the kit runs in process (``drive.runner.run``) where only the hints matter, and
through the plugin (pytester) where the terminal text and the JSON record do.
"""

from __future__ import annotations

import json
import pkgutil

import pytest

from conformance import adapters
from conformance.collect import SCREENFUL, screenful
from conformance.drive import runner
from conformance.judge.compare import port_mistakes
from reference import variants
from tests.helpers import ROOT, bundled_vectors, vector_from
from vectors.generate import build, family_document, render
from vectors.scenarios import WIDE, Scenario, draw

VECTORS = {v.id: v for v in bundled_vectors()}

#: Three variables of one shape, so that slots bound by position can be handed from one to another.
_INITIAL = {n: draw(90 + i, (2, 3), 1.0, WIDE) for i, n in enumerate("abc")}


def _g(name: str, s: int) -> list:
    return draw(9000 + 100 * "abc".index(name) + s, (2, 3), 1.0, WIDE)


def _scenario(vid: str, second: list[str | tuple[str, None]]) -> Scenario:
    """Steps 1 and 3 pass a, b, c in that order; step 2 passes ``second`` (a name, or (name, None) for a None gradient)."""
    full = lambda s: {n: _g(n, s) for n in "abc"}  # noqa: E731 - one line
    middle = {x: _g(x, 1) if isinstance(x, str) else None for x in second}
    middle = {(x if isinstance(x, str) else x[0]): g for x, g in middle.items()}
    return Scenario(vid, "Slots stay with their variable whatever the order of the call.", ["ADAM-MULTI-1"],
                    dict(_INITIAL), [full(0), middle, full(2)])


REORDERED = _scenario("multivariable/reordered", ["b", "a", "c"])
LEFT_OUT = _scenario("multivariable/left-out", [("a", None), "b", "c"])

EXCHANGED_BY_GRADIENT = ("step 2: slots of a and b exchanged (a.m and a.v were updated with b's gradient, b's with a's): "
                         "slots bound by position in the call, not by variable (ADAM-API-SLOTS-2, ADAM-MULTI-1)")
GET_SLOT_COPY = "get_slot returns a copy"
DISCARDED = "the update was computed on a copy and discarded"
BY_POSITION = "slots bound by position in the call"


def _adapter(spec: str):
    return adapters.load(adapters.choose(spec))(pkgutil.resolve_name(spec))


def _mistakes(candidate: str, vector, dtype: str = "float32") -> dict[str, list[str]]:
    """The hints each mode's failure names, run as the plugin runs it."""
    return {o.mode: o.comparison.mistakes for o in runner.run(_adapter(candidate), vector, dtype, runner.MODES)}


def _every_hint(candidate: str, vector, dtype: str) -> list[str]:
    """``port_mistakes`` at every step of both modes, whether or not the run failed: what a hint would say if it
    were asked everywhere (the runner asks only once the numbers fail)."""
    try:
        outcomes = runner.run(_adapter(candidate), vector, dtype, runner.MODES, keep=True)
    except Exception as exc:  # noqa: BLE001 - unsupported, or a broken run: no observations, no hint
        return [] if "unsupported" in type(exc).__name__.lower() else [repr(exc)]
    initial = vector.initial()
    start = {"iterations": 0, **{n: {"variable": v} for n, v in initial.items()}}
    oracle = [start, *vector.states(initial, vector.gradients)]
    dtypes = vector.variable_dtypes(dtype)
    found = []
    for o in outcomes:
        for s, obs in enumerate(o.observed or []):
            # As the runner does: the trajectory's own previous state, the oracle's where it was loaded.
            had = (o.observed[s - 1] if s else start) if o.mode == "trajectory" else oracle[s]
            found += [f"{vector.id}[{dtype}] {o.mode}: {line}"
                      for line in port_mistakes(s + 1, had, obs, oracle[s], oracle[s + 1], vector.gradients(s), dtypes)]
    return found


# --- slots bound by position ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("port,scenario,line", [
    ("SlotsByPosition", REORDERED, EXCHANGED_BY_GRADIENT),
    ("SlotsByCurrentPosition", REORDERED,
     "step 2: slots of a and b exchanged (a.m and a.v were updated from b's slots, b's with a's): slots bound by "
     "position in the call, not by variable (ADAM-API-SLOTS-2, ADAM-MULTI-1)"),
    ("SlotsByPosition", LEFT_OUT,
     "step 2: a.m and a.v were updated with b's gradient: slots bound by position in the call, not by variable "
     "(ADAM-API-SLOTS-2, ADAM-MULTI-1)"),
])
def test_slots_bound_by_position_are_named_with_their_evidence(port, scenario, line):
    for mode, hints in _mistakes(f"tests.hint_ports:{port}", vector_from(scenario)).items():
        assert hints and hints[0] == line, (mode, hints)
        assert not any(GET_SLOT_COPY in h or DISCARDED in h for h in hints), (mode, hints)


def test_a_port_whose_slots_follow_their_variable_gets_no_position_hint_on_reordered_calls():
    assert _every_hint("reference:Adam", vector_from(REORDERED), "float32") == []
    assert _every_hint("reference:Adam", vector_from(LEFT_OUT), "float32") == []


def test_slots_bound_by_position_are_named_in_the_terminal(pytester, tmp_path):
    """Through the plugin: the first hint is the line the summary prints for the item."""
    pytester.syspathinsert(ROOT)
    path = tmp_path / "multivariable.yaml"  # named like the bundled family: it replaces it for this run
    path.write_text(render({**family_document("multivariable"), "vectors": [build(REORDERED)]}), encoding="utf-8")
    result = pytester.runpytest("-p", "no:cacheprovider", "--candidate=tests.hint_ports:SlotsByPosition",
                                f"--vectors={path}", "-k", "reordered and float32")
    assert result.ret == 1
    result.stdout.fnmatch_lines([f"FAIL: multivariable/reordered [[]float32[]] from step 2: {EXCHANGED_BY_GRADIENT}"])
    assert GET_SLOT_COPY not in result.stdout.str()


# --- an update made on a copy and thrown away -------------------------------------------------------------------------


def test_a_kernel_that_discards_the_update_of_a_strided_variable_is_named():
    hints = _mistakes("tests.hint_ports:DiscardsStridedUpdate", VECTORS["kernels/strided"])
    for mode in runner.MODES:
        assert hints[mode][:2] == [
            f"step 1: {n}.variable, {n}.m and {n}.v did not change although the oracle's did: the update was computed "
            "on a copy and discarded (e.g. a contiguous temporary of a strided variable), or skipped (ADAM-UPDATE-4, "
            "ADAM-SHAPE-1)" for n in ("matrix", "vector")], (mode, hints[mode])
        assert not any(GET_SLOT_COPY in h for h in hints[mode]), hints[mode]
    assert all(not h for h in _mistakes("tests.hint_ports:DiscardsStridedUpdate", VECTORS["dense/basic"]).values())


def test_a_variable_updated_through_a_copy_while_its_slots_move_is_not_a_get_slot_copy():
    hints = _mistakes("reference.variants:FlatCopyUpdate", VECTORS["kernels/strided"])["trajectory"]
    assert hints[0] == ("step 1: matrix.variable did not change although the oracle's did and matrix.m and matrix.v "
                        "moved: the variable's update was written to a copy (e.g. through a reshape of a strided "
                        "variable) or is too small to show (ADAM-UPDATE-4, ADAM-SHAPE-1)"), hints
    assert not any(GET_SLOT_COPY in h or DISCARDED in h for h in hints), hints


# --- get_slot returning a copy ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", [VECTORS["dense/basic"], VECTORS["kernels/strided"], vector_from(REORDERED)],
                         ids=lambda v: v.id)
def test_get_slot_copies_are_named_where_the_variable_took_the_step(vector):
    hints = _mistakes("tests.hint_ports:SlotCopies", vector)
    name = next(iter(vector.record["variables"]))
    for mode in runner.MODES:
        assert hints[mode][0] == (f"step 2: {name}.m and {name}.v did not change although {name}.variable took the "
                                  "oracle's step: get_slot returns a copy, not the slot (ADAM-API-SLOTS-2)"), hints[mode]
        assert not any(BY_POSITION in h or DISCARDED in h for h in hints[mode]), hints[mode]


def test_no_get_slot_hint_where_the_variable_did_not_take_the_oracle_s_step():
    """SlotsByPosition leaves c's slots alone at the left-out step while c moves with b's slots: c's slots stayed,
    but its variable shows a wrong step, which a get_slot copy does not make."""
    hints = _mistakes("tests.hint_ports:SlotsByPosition", vector_from(LEFT_OUT))
    assert all(hints.values())
    assert not any(GET_SLOT_COPY in h for mode in hints.values() for h in mode), hints


# --- no hint on a correct port ----------------------------------------------------------------------------------------


# reference:Adam in the fast tier; the correct variants (each some seconds) in the slow one.
@pytest.mark.parametrize("candidate", ["reference:Adam", *(pytest.param(f"reference.variants:{c.__name__}", marks=pytest.mark.slow)
                                                         for c in variants.CORRECT)])
def test_correct_ports_get_no_hint_at_any_step_of_any_bundled_vector(candidate):
    found = [h for v in VECTORS.values() for dtype in v.dtypes for h in _every_hint(candidate, v, dtype)]
    assert found == [], found[:5]


# --- a failure prints at most a screenful -----------------------------------------------------------------------------


@pytest.mark.slow  # every failure on 128 tensors diagnosed: half a minute
def test_a_failure_on_many_tensors_prints_a_screenful_and_the_json_keeps_every_tensor(pytester, tmp_path):
    pytester.syspathinsert(ROOT)
    out = tmp_path / "r.json"
    result = pytester.runpytest("-p", "no:cacheprovider", "--candidate=reference.variants:EpsilonInsideSqrt",
                                f"--conformance-json={out}", "-k", "many-tensors and float32")
    assert result.ret == 1
    lines = result.stdout.lines
    start = lines.index("kernels/many-tensors [float32] (ADAM-SHAPE-1, ADAM-MULTI-1): does not conform")
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("====="))
    failure = lines[start:end]
    assert len(failure) <= SCREENFUL, len(failure)
    result.stdout.fnmatch_lines([
        "  trajectory mode: fails from step 1", "    t000.variable out of bound from step 1: *",
        "  single-step mode: fails from step 1", "    t000.variable out of bound from step 1: *",
        "  diagnosis: *", "  localisation: *",
        "  ... * more lines left out (a failure prints at most 40 lines); the --conformance-json and "
        "--conformance-html reports have every tensor"])
    left_out = int(failure[-1].split()[1])
    assert left_out > 1000  # the whole report would have been over a thousand lines
    (record,) = [r for r in json.loads(out.read_text())["results"] if r["vector"] == "kernels/many-tensors"]
    n_tensors = len(VECTORS["kernels/many-tensors"].record["variables"])
    for mode in runner.MODES:
        worst = record["modes"][mode]["worst"]
        assert {k for k in worst if k.endswith(".variable")} == {f"{n}.variable" for n in
                                                                 VECTORS["kernels/many-tensors"].record["variables"]}
        assert sum(w["ratio"] > 1 for w in worst.values()) > n_tensors // 2  # every failing tensor, not the printed few
    assert record["message"].startswith("t000.variable out of bound from step 1")


def test_screenful_keeps_each_mode_s_first_items_whole_and_counts_the_rest():
    modes = [["  trajectory mode: fails"] + [f"    t{i}.variable out" if j == 0 else f"      detail {i}.{j}"
                                             for i in range(30) for j in range(3)],
             ["  single-step mode: fails"] + [f"    problem {i}" for i in range(30)]]
    tail = ["  diagnosis: d", "  localisation: l"]
    out = screenful(["header"], modes, tail, limit=20)
    assert len(out) == 20 and out[0] == "header" and out[-3:-1] == tail
    kept = out[1:-3]
    assert kept[0] == "  trajectory mode: fails" and "  single-step mode: fails" in kept
    trajectory = kept[1:kept.index("  single-step mode: fails")]
    assert len(trajectory) % 3 == 0 and trajectory[:3] == ["    t0.variable out", "      detail 0.1", "      detail 0.2"]
    assert kept[kept.index("  single-step mode: fails") + 1] == "    problem 0"
    assert out[-1].startswith(f"  ... {sum(map(len, modes)) - len(kept)} more lines left out")
    short = screenful(["header"], [modes[1][:3]], tail)
    assert short == ["header", *modes[1][:3], *tail]  # what fits is printed whole, with no omission line
