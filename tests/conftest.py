"""The kit's own tests in two tiers: plain ``pytest`` runs the fast tier (``-m "not slow"`` in pyproject's addopts),
``pytest -m slow`` the slow one (minutes: the real frameworks, the mutation kill matrix).  CI runs both."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import need, warm_cache

#: Tests that take minutes and whose module this file marks (tests/test_real_candidates.py is owned by others):
#: module name -> test function names.
SLOW = {"test_real_candidates": {"test_real_candidate", "test_property_tier_with_a_fixed_seed"}}


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = getattr(item, "module", None)
        if module is not None and getattr(item, "originalname", item.name) in SLOW.get(module.__name__.split(".")[-1], ()):
            item.add_marker(pytest.mark.slow)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """tests/test_real_candidates.py skips a row whose framework is absent: ``need`` makes that a failure in CI."""
    module = getattr(item, "module", None)
    if module is None or module.__name__.split(".")[-1] != "test_real_candidates":
        return
    params = getattr(getattr(item, "callspec", None), "params", {})
    if "name" in params:
        need(module.RUNS[params["name"]][3])
    elif "module" in params:
        need(params["module"])


@pytest.fixture(scope="session")
def kit_cache(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Options for whole-kit runs (pytester): a cache folder, shared by this process's runs, whose verified-vector
    cache already lists the bundled files, so that each run does not re-derive all of them through the oracle."""
    return warm_cache(Path(tmp_path_factory.mktemp("kit-cache")))
