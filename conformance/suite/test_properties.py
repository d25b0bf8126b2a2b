"""The property tier (``--tier=property``): Hypothesis scenarios, metamorphic checks, exported counterexamples.

Each check draws scenarios the candidate can express (``conformance.property``)
and states one property, citing its clause.  ``agrees_with_oracle`` runs a
scenario like a stored vector (both modes, the error model); the metamorphic
checks compare the candidate with itself, using the oracle only to size the
tolerance.  A failing example is shrunk by Hypothesis and, with
``--export-failures=DIR``, written as a vector file.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, reject, strategies as st, target

from conformance.errors import Unsupported
from conformance.judge.compare import Comparison, as_state, failure_text
from conformance.features import Feature
from conformance.property import densified, first_difference, observe, rescaled, scenarios, to_vector
from conformance.drive.runner import MODES, run


def _outcomes(env, tracker, vector, modes=MODES, keep=False):
    try:
        outcomes = run(env.adapter, vector, vector.dtypes[0], modes, keep=keep)
    except Unsupported:
        reject()  # the strategy drew something this candidate cannot express: not an example at all
    tracker.candidate_seconds += sum(o.candidate_seconds for o in outcomes)
    return outcomes


def _observe(env, vector, **kwargs):
    try:
        return observe(env.adapter, vector, vector.dtypes[0], **kwargs)
    except Unsupported:
        reject()


def _fail(tracker, scn, text):
    tracker.failing = scn
    raise AssertionError(text)


def _agreement(a, b, factor, oracle):
    """Compare run a with run b: within factor times a's error model (both runs within their bounds).

    ``oracle`` is the trajectory a's error model follows; it decides where the bound reaches overflow.
    """
    cmp = Comparison(a.comparison.dtype)
    for s, (x, y, errors, exact) in enumerate(zip(a.observed, b.observed, a.errors, oracle), start=1):
        cmp.add_step(s, x, as_state(y), errors, factor * a.scale, exact)
    return cmp


@pytest.mark.clause("ADAM-UPDATE-4")
def test_agrees_with_oracle(property_env):
    """Any scenario the candidate can express: within the error model of the oracle, in both modes."""
    env, tracker = property_env, property_env.tracker()

    @env.settings
    @given(scenarios(env.options()))
    def check(scn):
        outcomes = _outcomes(env, tracker, to_vector(scn))
        ratio = max(o.comparison.max_ratio for o in outcomes)
        target(min(ratio, 1e6), label="share of the error bound used")  # steer toward the worst case
        tracker.seen(scn, ratio)
        failing = [o for o in outcomes if not o.passed]
        if failing:
            o = failing[0]
            _fail(tracker, scn, o.error or "\n".join([failure_text(o.comparison, f"{o.mode} mode:")] + o.liveness))

    env.check(check, tracker)


@pytest.mark.clause("ADAM-SPARSE-2")
def test_sparse_equals_dense(property_env):
    """An IndexedSlices gradient and its dense equivalent (duplicates summed) give the same trajectory."""
    env, tracker = property_env.require(Feature.SPARSE), property_env.tracker()

    @env.settings
    @given(scenarios(env.options(sparse=True, nonfinite=False)))
    def check(scn):
        vector = to_vector(scn)
        (a,) = _outcomes(env, tracker, vector, ("trajectory",), keep=True)
        (b,) = _outcomes(env, tracker, to_vector(densified(scn)), ("trajectory",), keep=True)
        if a.error or b.error:
            _fail(tracker, scn, a.error or b.error)
        cmp = _agreement(a, b, 2.0, list(vector.states()))
        tracker.seen(scn, cmp.max_ratio)
        if not cmp.passed:
            _fail(tracker, scn, failure_text(cmp, "sparse run vs dense run (allowed: both runs' bounds):"))

    env.check(check, tracker)


@pytest.mark.clause("ADAM-UPDATE-6")
def test_invariant_to_gradient_rescaling(property_env):
    """Gradients times 2^k leave the updates unchanged where epsilon is negligible (the page's invariance)."""
    env, tracker = property_env, property_env.tracker()
    options = env.options(negligible_epsilon=True, nonfinite=False, gradient_exponents=(-2, 4), betas=(0.0, 0.5, 0.75))

    @env.settings
    @given(scenarios(options), st.integers(-3, 3).filter(bool))
    def check(scn, power):
        va, vb = to_vector(scn), to_vector(rescaled(scn, power))
        (a,) = _outcomes(env, tracker, va, ("trajectory",), keep=True)
        (b,) = _outcomes(env, tracker, vb, ("trajectory",), keep=True)
        # Precondition, from the oracle: epsilon is negligible here, so the exact updates agree to float64 rounding.
        for sa, sb in zip(va.states(), vb.states()):
            for name, fields in sa.items():
                if name != "iterations":
                    x, y = fields["variable"], sb[name]["variable"]
                    assume(np.allclose(x, y, rtol=2.0**-40, atol=0.0, equal_nan=True))
        if a.error or b.error:
            _fail(tracker, scn, a.error or b.error)
        variables_only = [{n: {"variable": f["variable"]} for n, f in step.items() if n != "iterations"}
                          for step in b.observed]
        b.observed = [{"iterations": o["iterations"], **v} for o, v in zip(b.observed, variables_only)]
        cmp = _agreement(a, b, 2.0, list(va.states()))
        tracker.seen(scn, cmp.max_ratio)
        if not cmp.passed:
            _fail(tracker, scn, failure_text(cmp, f"gradients x 2^{power} vs unscaled (allowed: both runs' bounds):"))

    env.check(check, tracker)


@pytest.mark.clause("ADAM-API-WEIGHTS-2")
def test_checkpoint_resume(property_env):
    """Reading the state mid-run and giving it to a fresh optimizer continues the same trajectory, bit for bit."""
    env, tracker = property_env, property_env.tracker()

    @env.settings
    @given(scenarios(env.options(nonfinite=False)), st.data())
    def check(scn, data):
        vector = to_vector(scn)
        assume(len(scn.steps) >= 2)
        at = data.draw(st.integers(1, len(scn.steps) - 1), label="resume after step")
        whole, resumed = _observe(env, vector), _observe(env, vector, resume_at=at)
        tracker.seen(scn, 0.0)
        where = first_difference(whole, resumed, start=at)
        if where:
            _fail(tracker, scn, f"resumed after step {at}, the run differs from the uninterrupted one: {where}")

    env.check(check, tracker)


@pytest.mark.clause("ADAM-API-CONFIG-2")
def test_config_round_trip(property_env):
    """``from_config(get_config())`` builds an optimizer that runs bit for bit like the original."""
    env, tracker = property_env.require(Feature.CONFIG_ROUND_TRIP), property_env.tracker()

    @env.settings
    @given(scenarios(env.options(constant_hyperparameters=True, nonfinite=False)))
    def check(scn):
        vector = to_vector(scn)
        original, clone = _observe(env, vector), _observe(env, vector, round_trip=True)
        tracker.seen(scn, 0.0)
        where = first_difference(original, clone)
        if where:
            _fail(tracker, scn, f"the from_config clone differs from the original: {where}")

    env.check(check, tracker)


@pytest.mark.clause("ADAM-DET-1")
def test_deterministic(property_env):
    """The same scenario run twice gives bitwise the same results (reported as nondeterminism, not as error)."""
    env, tracker = property_env, property_env.tracker()

    @env.settings
    @given(scenarios(env.options()))
    def check(scn):
        vector = to_vector(scn)
        first, second = _observe(env, vector), _observe(env, vector)
        tracker.seen(scn, 0.0)
        where = first_difference(first, second)
        if where:
            _fail(tracker, scn, f"NONDETERMINISTIC: two runs of the same inputs differ: {where}")

    env.check(check, tracker)
