"""A broken scenario is one line naming the file, the scenario and the field or step: never the oracle's traceback."""

from __future__ import annotations

import re

import pytest

from conformance import cli

HEAD = """family: team
scenarios:
  - id: team/broken
    description: a scenario with one mistake
    clauses: [ADAM-UPDATE-4]
"""
VARIABLES = "    variables:\n      a: [1.0, 2.0]\n      b: [[0.5]]\n"
TWO_STEPS = "    steps:\n      - {a: [0.5, 0.25]}\n      - {a: [0.5, 0.25], b: [[1.0]]}\n"


def _file(extra: str = "", steps: str = TWO_STEPS) -> str:
    return HEAD + extra + VARIABLES + steps


@pytest.mark.parametrize("text,where,message", [
    (_file(steps="    steps:\n      - {a: [0.5, 0.25]}\n      - {a: null, b: null}\n"), "steps[1]",
     "no variable has a gradient at this step: apply_gradients raises for such a call (ADAM-ITER-3), so no vector can "
     "record it; give one variable a gradient or drop the step"),
    (_file(steps="    steps:\n      - {a: [0.5, 0.25]}\n      - {}\n"), "steps[1]",
     "no variable has a gradient at this step: *"),
    (_file("    hyperparameters:\n      learning_rate: {schedule: [0.5]}\n"), "hyperparameters.learning_rate.schedule",
     "the schedule has 1 value(s) for 2 steps: it needs one per step"),
    (_file("    hyperparameters:\n      beta_1: {callable: [0.5]}\n"), "hyperparameters.beta_1.callable",
     "the callable has 1 value(s) for 2 steps: it needs one per step"),
    (_file("    hyperparameters:\n      epsilon: .inf\n"), "hyperparameters.epsilon",
     "a hyperparameter must be finite (vectors hold finite ones only: *"),
    (_file("    hyperparameters:\n      learning_rate: .nan\n"), "hyperparameters.learning_rate",
     "a hyperparameter must be finite *"),
    (_file(steps="    steps:\n      - {a: [.nan, 0.25]}\n"), "steps[0].a", "a value is NaN or infinite: scenario values must be finite"),
    (_file(steps="    steps:\n      - {a: [0.5, 0.25, 1.0]}\n"), "steps[0].a", "a gradient of shape [3] for a variable of shape [2]"),
    (_file(steps="    steps:\n      - {b: {indices: [3], values: [[0.5]]}}\n"), "steps[0].b.indices",
     "index 3 is out of range for a variable of 1 rows"),
    (_file(steps="    steps:\n      - {b: {indices: [0], values: [0.5, 0.25]}}\n"), "steps[0].b.values",
     "values of shape [2], expected [1, 1] (one row of the variable per index)"),
    # Nothing checks the betas before the oracle runs: what it raises still comes back as one line, with its step.
    (_file("    hyperparameters:\n      beta_1: 1.0\n"), "steps[0]",
     "the oracle cannot run it: ZeroDivisionError: float division by zero"),
])
@pytest.mark.parametrize("command", ["generate", "check"])
def test_a_broken_scenario_is_one_line_naming_file_scenario_and_where(tmp_path, capsys, text, where, message, command):
    path = tmp_path / "team.yaml"
    path.write_text(text, encoding="utf-8")
    folder = "--out" if command == "generate" else "--vectors"
    assert cli.main([command, "--scenarios", str(path), folder, str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    expected = f"adam-conformance {command}: {path}: scenario 'team/broken': field '{where}': {message}\n"
    # "*" stands for the rest of a long message; brackets are literal (field names have them)
    assert re.fullmatch(".*".join(map(re.escape, expected.split("*"))), err, flags=re.S), err


def test_any_oracle_error_is_one_line_with_its_step(tmp_path, capsys, monkeypatch):
    """Whatever the oracle raises, at whichever step, reaches the author as one line naming that step."""
    from vectors import generate

    real = generate.build

    def fails_from_step_3(scn):
        if len(scn.steps) >= 3:
            raise RuntimeError("something the checks did not foresee\nsecond line")
        return real(scn)

    monkeypatch.setattr(generate, "build", fails_from_step_3)
    path = tmp_path / "team.yaml"
    path.write_text(_file(steps="    steps:\n" + "      - {a: [0.5, 0.25]}\n" * 4), encoding="utf-8")
    assert cli.main(["generate", "--scenarios", str(path), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == (f"adam-conformance generate: {path}: scenario 'team/broken': field 'steps[2]': "
                                       "the oracle cannot run it: RuntimeError: something the checks did not foresee\n")


def test_a_good_scenario_with_a_null_gradient_beside_a_real_one_still_generates(tmp_path):
    path = tmp_path / "team.yaml"
    path.write_text(_file(steps="    steps:\n      - {a: [0.5, 0.25], b: null}\n      - {a: null, b: [[1.0]]}\n"),
                    encoding="utf-8")
    assert cli.main(["generate", "--scenarios", str(path), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "team.yaml").is_file()
