"""The two tiers of the kit's own tests, and CI that fails loudly: plain ``pytest`` leaves the slow tier out,
``pytest -m slow`` runs only it, neither is ever empty, and under CI a missing framework or program is a failure."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid

import pytest

from tests.helpers import FRAMEWORKS, ROOT, TOOLS, need, once_per_run


def _collected(*args: str) -> list[str]:
    """The test ids ``pytest --collect-only`` lists in the repository with ``args`` (pyproject's addopts apply)."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return [line for line in proc.stdout.splitlines() if "::" in line]


def test_plain_pytest_is_the_fast_tier_and_m_slow_the_slow_one():
    fast, slow = _collected(), _collected("-m", "slow")  # the later -m overrides addopts' -m 'not slow'
    assert fast and slow and not set(fast) & set(slow)  # neither tier is empty: pytest would exit 5
    assert {t.split("::")[0] for t in slow} >= {"tests/test_mutants.py", "tests/test_real_candidates.py"}
    assert sum("::test_real_candidate[" in t for t in slow) >= 20  # every real framework's row
    assert "tests/test_tiers.py::test_plain_pytest_is_the_fast_tier_and_m_slow_the_slow_one" in fast
    assert "tests/test_real_candidates.py::test_readme_matrix_is_built_from_the_committed_results" in fast


def test_ci_runs_both_tiers_with_ci_set():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    (command,) = re.findall(r"^TEST_COMMAND='(.*)'$", ci, flags=re.M)
    assert command.endswith("&& pytest -n 2 && pytest -n 2 -m slow")
    assert 'CI=true bash -c "$TEST_COMMAND"' in ci


@pytest.mark.parametrize("ci", ["true", ""])
def test_a_missing_need_skips_on_a_developers_machine_and_fails_in_ci(monkeypatch, ci):
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception if ci else pytest.skip.Exception, match="no_such_framework is not installed"):
        need("no_such_framework")
    monkeypatch.setitem(TOOLS, "no-such-tool", ("no-such-tool",))
    with pytest.raises(pytest.fail.Exception if ci else pytest.skip.Exception, match="no-such-tool is not installed"):
        need("no-such-tool")


@pytest.mark.parametrize("name", [*FRAMEWORKS, *TOOLS])
def test_what_the_tests_use_is_here(name):
    """Under CI each is required; elsewhere this says, as a skip, which tests will skip."""
    assert need(name)


def test_once_per_run_makes_a_value_once_for_every_xdist_worker(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("PYTEST_XDIST_TESTRUNUID", uuid.uuid4().hex)
    calls = []
    assert once_per_run(tmp_path_factory, "t", lambda: calls.append(1) or {"a": [1]}) == {"a": [1]}
    assert once_per_run(tmp_path_factory, "t", lambda: calls.append(1) or {"a": [2]}) == {"a": [1]}  # as another worker
    assert calls == [1]
    with pytest.raises(ZeroDivisionError):
        once_per_run(tmp_path_factory, "u", lambda: 1 / 0)
    with pytest.raises(pytest.fail.Exception, match="u: the worker that made it failed: ZeroDivisionError"):
        once_per_run(tmp_path_factory, "u", lambda: 1)
