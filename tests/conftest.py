"""The kit's own tests in two tiers: plain ``pytest`` runs the fast tier (``-m "not slow"`` in pyproject's addopts),
``pytest -m slow`` the slow one (tests marked ``slow``: the real frameworks, the mutation kill matrix).  CI runs
both.  Shared fixtures: the warmed verified-vector cache of whole-kit runs, and the runner of pipe-port runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ROOT, warm_cache

@pytest.fixture(scope="session")
def kit_cache(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Options for whole-kit runs (pytester): a cache folder, shared by this process's runs, whose verified-vector
    cache already lists the bundled files, so that each run does not re-derive all of them through the oracle."""
    return warm_cache(Path(tmp_path_factory.mktemp("kit-cache")))


@pytest.fixture
def pipe_run(pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kit_cache: list[str]) -> Any:
    """The kit run in-process on a process candidate (from the repository's root, where the port commands are run);
    returns (pytest's result, the JSON document or None)."""
    pytester.syspathinsert(ROOT)
    monkeypatch.chdir(ROOT)  # the command is run from the current directory

    def _run(*args: str) -> tuple[Any, dict | None]:
        out = tmp_path / f"r{len(list(tmp_path.iterdir()))}.json"
        result = pytester.runpytest(*kit_cache, f"--conformance-json={out}", *args)
        return result, json.loads(out.read_text()) if out.exists() else None

    return _run
