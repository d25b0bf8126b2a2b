"""Checks that only a process candidate (``--candidate-command``, ``spec/pipe-protocol.md``) gets.

The optimizer_v2 API checks are unsupported for a process (P-9), and no vector sends a call the spec says
raises, so what P-5 defines for such a call would otherwise never be asked of a port.  Collected only when the
candidate is a command.
"""

from __future__ import annotations

from typing import Any

import pytest

from conformance.session import SESSION


@pytest.fixture
def process_candidate(request: pytest.FixtureRequest) -> Any:
    """The pipe adapter of the run's process candidate."""
    kit = request.config.stash.get(SESSION, None)
    if kit is None or kit.adapter.name != "pipe":
        pytest.skip("no --candidate-command given")
    return kit.adapter


@pytest.mark.clause("ADAM-ITER-3")
def test_all_null_apply_is_an_error(process_candidate):
    """P-5: an ``apply`` whose gradients are all null is answered ``error``, as ``apply_gradients`` raises in process."""
    from conformance.adapters.pipe import PipeError

    try:
        answer = process_candidate.all_null_apply()
    except PipeError as exc:  # it crashed, hung or broke the schema: one line, as for a vector item
        pytest.fail(str(exc), pytrace=False)
    if "ok" in answer:
        pytest.fail("P-5: the port answered 'ok' to an 'apply' whose gradients are all null; it must answer status "
                    "'error' (ADAM-ITER-3: all gradients None is an error)", pytrace=False)
