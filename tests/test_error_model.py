"""The error model and the comparison engine: sound where rounding is legitimate, tight enough to catch a wrong port."""

from __future__ import annotations

import numpy as np
import pytest

from conformance.judge.compare import Comparison
from conformance.judge.error_model import ErrorModel
from tests.helpers import vector_from
from vectors.scenarios import DYADIC, Scenario


def _emulate(vector, dtype, flush=False, kernel_form=True):
    """TF's dense kernel in the vector's dtype, optionally flushing subnormal results to zero (FTZ/DAZ)."""
    dt = np.dtype(dtype).type
    tiny = np.finfo(dtype).tiny

    def f(x):
        x = np.asarray(x, dtype=dtype)
        return np.where(np.abs(x) < tiny, dt(0), x) if flush else x

    x = f(vector.initial()["a"])
    m = np.zeros_like(x)
    v = np.zeros_like(x)
    out = []
    for s, step in enumerate(vector.steps):
        hp = vector.hyperparameters(s)
        b1, b2, lr, eps, t = dt(hp["beta_1"]), dt(hp["beta_2"]), dt(hp["learning_rate"]), dt(hp["epsilon"]), dt(s + 1)
        g = f(vector.gradients(s)["a"])
        alpha = f(lr * np.sqrt(f(dt(1) - b2**t)) / f(dt(1) - b1**t))
        if kernel_form:
            m = f(m + f(f(g - m) * f(dt(1) - b1)))
            v = f(v + f(f(f(g * g) - v) * f(dt(1) - b2)))
        else:
            m = f(f(b1 * m) + f(f(dt(1) - b1) * g))
            v = f(f(b2 * v) + f(f(dt(1) - b2) * f(g * g)))
        with np.errstate(over="ignore"):  # the overflow test overflows on purpose
            x = f(x - f(f(m * alpha) / f(f(np.sqrt(v)) + eps)))
        out.append({"iterations": s + 1, "a": {"variable": x.copy(), "m": m.copy(), "v": v.copy()}})
    return out


def _compare(vector, dtype, observed, ftz=False, carried=True):
    model = ErrorModel(vector, dtype, carried=carried, ftz=ftz)
    cmp = Comparison(dtype)
    for s, (obs, state) in enumerate(zip(observed, vector.states())):
        cmp.add_step(s + 1, obs, state, model.step(s, vector.gradients(s), state), model.scale)
    return cmp


def rounded_state(state, dtype):
    """The oracle's state as a float32 candidate would hold it."""
    return {"iterations": state["iterations"],
            **{n: {f: None if x is None else x.astype(dtype).astype(np.float64) for f, x in fields.items()}
               for n, fields in state.items() if n != "iterations"}}


def _vector(grads, hyper=None, dtypes=("float32",)):
    scn = Scenario("model/test", "error model test", ["ADAM-UPDATE-4"], {"a": [1.0, -1.0, 0.5]},
                   [{"a": g} for g in grads], dict(hyper or DYADIC), dtypes=list(dtypes))
    return vector_from(scn)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("kernel_form", [True, False], ids=["kernel-form", "paper-form"])
def test_both_conforming_orders_pass_and_use_a_fair_share_of_the_bound(dtype, kernel_form):
    rng = np.random.default_rng(7)
    grads = [np.asarray(rng.uniform(-1, 1, 3), dtype).astype(float).tolist() for _ in range(8)]
    vector = _vector(grads, dtypes=(dtype,))
    cmp = _compare(vector, dtype, _emulate(vector, dtype, kernel_form=kernel_form))
    assert cmp.passed, cmp.violations
    if dtype != "float64":  # a bound that no real rounding comes near would be too loose to catch anything
        assert cmp.max_ratio > 0.02


def test_a_flushed_subnormal_is_allowed_only_when_the_framework_flushes():
    # g^2 * (1 - beta_2) is subnormal in float32: flushing it to 0 changes the step enormously.
    tiny_grads = [[2.0**-64, -(2.0**-64), 2.0**-63]] * 2
    vector = _vector(tiny_grads, dict(DYADIC, epsilon=2.0**-100))
    flushed = _emulate(vector, "float32", flush=True)
    assert not _compare(vector, "float32", flushed, ftz=False).passed
    assert _compare(vector, "float32", flushed, ftz=True).passed
    assert _compare(vector, "float32", _emulate(vector, "float32"), ftz=True).passed


def test_overflow_is_allowed_only_where_the_bound_reaches_past_the_largest_value():
    """float16, beta_2 = 0: the kernel's v + (g*g - v) cancels to 0, and m / epsilon overflows (seen on tf_keras)."""
    hyper = {"learning_rate": 1.0, "beta_1": 0.5, "beta_2": 0.0, "epsilon": 2.0**-13}
    vector = _vector([[1.0, 1.0, 1.0], [1.0, 64.0, 1.0], [1.0, 1.0, 1.0]], hyper, dtypes=("float16",))
    observed = _emulate(vector, "float16")
    assert np.isinf(observed[2]["a"]["variable"][1]) and observed[2]["a"]["v"][1] == 0.0
    assert _compare(vector, "float16", observed).passed
    observed[2]["a"]["variable"][0] = np.inf  # where the bound is small, an infinity is a failure
    cmp = _compare(vector, "float16", observed)
    assert not cmp.passed and cmp.violations[0].index == (0,)


def test_single_step_bound_is_tighter_than_the_trajectory_bound():
    rng = np.random.default_rng(3)
    vector = _vector([rng.uniform(-1, 1, 3).astype(np.float32).astype(float).tolist() for _ in range(12)])
    last = {}
    for carried in (True, False):
        model = ErrorModel(vector, "float32", carried=carried)
        for s, state in enumerate(vector.states()):
            errors = model.step(s, vector.gradients(s), state)
        last[carried] = errors["a"]["variable"]
    assert np.all(last[False] < last[True])


def test_single_step_mode_reports_the_step_where_a_port_goes_wrong():
    """A port that is exact until step 4 and off by many ulps there: single-step mode names step 4."""
    vector = _vector([[0.5, -0.25, 1.0]] * 6)
    states = list(vector.states())
    observed = [{"iterations": st["iterations"], "a": {k: np.asarray(x, np.float32) for k, x in st["a"].items()}}
                for st in (rounded_state(x, "float32") for x in states)]
    observed[3]["a"]["variable"] = observed[3]["a"]["variable"] * np.float32(1 + 2.0**-12)
    cmp = _compare(vector, "float32", observed, carried=False)
    assert cmp.first_failing_step == 4 and cmp.violations[0].tensor == "a.variable"


def test_wrong_dtype_and_shape_are_named_before_values():
    vector = _vector([[0.5, 0.5, 0.5]])
    (state,) = vector.states()
    model = ErrorModel(vector, "float32", carried=True)
    errors = model.step(0, vector.gradients(0), state)
    cmp = Comparison("float32")
    observed = {"iterations": 1, "a": {"variable": state["a"]["variable"], "m": np.zeros(4, np.float32),
                                       "v": np.asarray(state["a"]["v"], np.float32)}}
    cmp.add_step(1, observed, state, errors, model.scale)
    assert cmp.problems == ["a.variable: dtype float64, expected float32 (step 1; ADAM-DTYPE-1)",
                            "a.m: shape [4], expected [3] (step 1)"]


def test_a_mixed_vector_is_bounded_as_each_dtype_alone():
    """ADAM-DTYPE-2: in a call of several dtypes, each variable's allowed error is that of its dtype's model over the
    same trajectory (as if every variable had that dtype), times that dtype's factor of E-7."""
    from conformance.dtypes import MIXED
    from conformance.judge.error_model import MixedErrorModel
    from tests.helpers import bundled_vectors

    (vector,) = [v for v in bundled_vectors() if v.dtypes == [MIXED]]
    own = {n: v["dtype"] for n, v in vector.record["variables"].items()}
    assert len(set(own.values())) == 3
    for carried in (True, False):
        mixed = MixedErrorModel(vector, own, carried=carried, ftz={d: False for d in own.values()},
                                initial=vector.initial())
        alone = {d: ErrorModel(vector, d, carried=carried) for d in set(own.values())}
        assert mixed.scale == 1.0
        for s, state in enumerate(vector.states()):
            grads = vector.gradients(s)
            got = mixed.step(s, grads, state)
            want = {d: model.step(s, grads, state) for d, model in alone.items()}
            assert list(got) == list(state)[1:]  # every variable, in the vector's order
            for name, fields in got.items():
                for f, e in fields.items():
                    assert np.array_equal(e, alone[own[name]].scale * want[own[name]][name][f]), (s, name, f)


def test_a_mixed_vector_runs_only_as_mixed():
    import pkgutil

    from conformance import adapters
    from conformance.drive.runner import run
    from tests.helpers import bundled_vectors

    mixed = next(v for v in bundled_vectors() if v.dtypes == ["mixed"])
    plain = next(v for v in bundled_vectors() if v.id == "dense/basic")
    adapter = adapters.load(adapters.choose("reference:Adam"))(pkgutil.resolve_name("reference:Adam"))
    with pytest.raises(ValueError, match="runs in mixed: not in float32"):
        run(adapter, mixed, "float32")
    with pytest.raises(ValueError, match="not in mixed"):
        run(adapter, plain, "mixed")
    assert all(o.passed for o in run(adapter, mixed, "mixed", ("trajectory", "single-step")))
