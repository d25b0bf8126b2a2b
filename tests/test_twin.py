"""Twin runs and replicas (``Adapter.twin``, ``Session.replicas``, ``judge/identical.py``): a run compared bit for bit
with the same candidate's run elsewhere (on one device; uninterrupted), and replicas compared with each other.

The candidates are NumPy ports made for these tests: the reference port, and the same port nudged by one ulp of v at
one step (what a sharded kernel's rounding does), well inside the error model's bound."""

from __future__ import annotations

import re

import numpy as np
import pytest

from conformance.adapters.numpy_port import NumpyPortAdapter
from conformance.drive.runner import run
from conformance.judge.identical import difference, first_disagreement
from reference import Adam
from tests.helpers import bundled_vectors


class NudgedAtStep2(Adam):
    """The reference port with v of every variable moved one ulp up after its second step."""

    def apply_gradients(self, grads_and_vars):
        super().apply_gradients(grads_and_vars)
        if int(self.iterations) == 2:
            for _, var in grads_and_vars:
                v = self.get_slot(var, "v")
                v[...] = np.nextafter(v, np.inf)


class TwinAdapter(NumpyPortAdapter):
    """A NumPy port whose twin is the reference port: ``binding`` decides whether a difference fails."""

    twin_label = "the reference port"

    def __init__(self, candidate, binding: bool) -> None:
        super().__init__(candidate)
        self.twin_binding = binding

    def twin(self):
        return NumpyPortAdapter(Adam)


class Replicated(NumpyPortAdapter):
    """Two replicas of the candidate; replica 1 is the nudged port."""

    def start(self, spec):
        first, second = NumpyPortAdapter(Adam).start(spec), NumpyPortAdapter(NudgedAtStep2).start(spec)

        class Both:
            def apply(self, grads, step):
                first.apply(grads, step)
                second.apply(grads, step)

            def read(self):
                return first.read()

            def replicas(self):
                return [first.read(), second.read()]

        return Both()


@pytest.fixture(scope="module")
def dense():
    return next(v for v in bundled_vectors() if v.id == "dense/basic")


def test_a_difference_within_the_bound_is_reported_beside_the_verdict(dense):
    (outcome,) = run(TwinAdapter(NudgedAtStep2, binding=False), dense, "float32", ("trajectory",))
    assert outcome.passed
    assert outcome.twin.startswith("not bit-identical to the reference port: ")
    assert re.fullmatch(r"not bit-identical to the reference port: \d+ ulps in a\.(v|variable) from step 2", outcome.twin)


def test_a_binding_twin_fails_the_item(dense):
    (outcome,) = run(TwinAdapter(NudgedAtStep2, binding=True), dense, "float32", ("trajectory",))
    assert outcome.comparison.passed and not outcome.passed
    assert "from step 2" in outcome.twin


def test_an_identical_twin_says_nothing(dense):
    (outcome,) = run(TwinAdapter(Adam, binding=True), dense, "float32", ("trajectory",))
    assert outcome.passed and outcome.twin is None


def test_replicas_that_disagree_fail_the_item(dense):
    (outcome,) = run(Replicated(Adam), dense, "float32", ("trajectory",))
    assert not outcome.passed
    assert outcome.replicas.startswith("replica 1 differs from replica 0: ") and outcome.replicas.endswith("at step 2")


def test_difference_in_ulps():
    a = {"iterations": 1, "x": {"variable": np.array([1.0, 2.0], np.float32), "m": None}}
    b = {"iterations": 1, "x": {"variable": np.array([1.0, np.nextafter(np.float32(2), np.float32(3))], np.float32)}}
    assert difference(a, a, {"x": "float32"}) is None
    found = difference(a, b, {"x": "float32"})
    assert found.text == "1 ulps in x.variable" and found.ulps == 1.0
    assert difference({"iterations": 2}, {"iterations": 3}, {}).text == "iterations 2 against 3"
    nan = {"iterations": None, "x": {"variable": np.array([np.nan])}}
    assert difference(nan, nan, {"x": "float64"}) is None
    assert first_disagreement([a, a, b], {"x": "float32"}) == "replica 2 differs from replica 0: 1 ulps in x.variable"


def test_the_terminal_lists_items_that_conform_but_differ_from_their_twin():
    from conformance.report.terminal import twin_lines

    results = [{"vector": f"dense/v{i}", "dtype": "float32", "verdict": "pass", "twin": "not bit-identical to one "
                "device: 3 ulps in a.v from step 2"} for i in range(7)] + [{"vector": "x", "verdict": "pass"}]
    lines = twin_lines(results)
    assert lines[0] == "conforms, but 7 item(s) are not bit-identical to their twin:"
    assert lines[1] == "  dense/v0 [float32]: not bit-identical to one device: 3 ulps in a.v from step 2"
    assert lines[-1] == "  ... and 2 more (JSON report: 'twin')" and len(lines) == 7
    assert twin_lines(results[-1:]) == []
