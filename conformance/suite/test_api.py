"""Checks of the optimizer_v2 API (spec section I) and of behaviour no vector can express.

They run for candidates whose adapter claims that API (NumPy ports,
``tf_keras.optimizers.legacy.Adam``) through the ``adam_api`` fixture, which
creates variables and gradients in the candidate's framework.  Hyperparameters
and inputs are dyadic, so the expected values below are exact.
"""

from __future__ import annotations

import numpy as np
import pytest

from conformance.dtypes import DYADIC
from conformance.features import HYPERPARAMETERS
from reference import adam as oracle

HP = dict(DYADIC)
LR, B1, B2, EPS = (HP[k] for k in HYPERPARAMETERS)


def _step(api, opt, pairs):
    opt.apply_gradients([(api.gradient(g), v) for g, v in pairs])


@pytest.mark.clause("ADAM-API-SLOTS-1")
@pytest.mark.parametrize("amsgrad", [False, True], ids=["adam", "amsgrad"])
def test_slot_names(adam_api, amsgrad):
    opt = adam_api.make(**HP, amsgrad=amsgrad)
    var = adam_api.variable([1.0, 2.0])
    _step(adam_api, opt, [([0.5, -0.25], var)])
    assert list(opt.get_slot_names()) == (["m", "v", "vhat"] if amsgrad else ["m", "v"])


@pytest.mark.clause("ADAM-API-SLOTS-2")
def test_get_slot_and_add_slot(adam_api):
    opt = adam_api.make(**HP, amsgrad=adam_api.amsgrad)
    var = adam_api.variable([1.0, 2.0])
    _step(adam_api, opt, [([0.5, -0.25], var)])
    m, v = (adam_api.numpy(opt.get_slot(var, s)) for s in ("m", "v"))
    np.testing.assert_array_equal(m, [(1 - B1) * 0.5, (1 - B1) * -0.25])
    np.testing.assert_array_equal(v, [(1 - B2) * 0.25, (1 - B2) * 0.0625])
    if adam_api.amsgrad:
        np.testing.assert_array_equal(adam_api.numpy(opt.get_slot(var, "vhat")), v)
    assert opt.add_slot(var, "m") is opt.get_slot(var, "m"), "add_slot must return the existing slot"


@pytest.mark.clause("ADAM-API-WEIGHTS-1")
def test_weights_order(adam_api):
    opt = adam_api.make(**HP, amsgrad=adam_api.amsgrad)
    a, b, c = adam_api.variable([1.0, 2.0]), adam_api.variable([1.0, 2.0, 3.0]), adam_api.variable([[1.0]])
    assert list(opt.get_weights()) == [], "weights must be empty before the first apply_gradients"
    _step(adam_api, opt, [([0.5, -0.25], a), ([0.25, 0.5, 1.0], b)])
    _step(adam_api, opt, [([0.5, 0.5], a), ([1.0, 1.0, 1.0], b), ([[2.0]], c)])
    weights = [adam_api.numpy(w) for w in opt.get_weights()]
    names = ["m", "v", "vhat"] if adam_api.amsgrad else ["m", "v"]
    # Slot by slot over the variables of the first call, then the late variable's slots (ADAM-API-WEIGHTS-1).
    expected = [(x, s) for s in names for x in (a, b)] + [(c, s) for s in names]
    assert [w.shape for w in weights] == [()] + [adam_api.numpy(opt.get_slot(x, s)).shape for x, s in expected]
    assert int(weights[0]) == 2
    for w, (x, s) in zip(weights[1:], expected):
        np.testing.assert_array_equal(w, adam_api.numpy(opt.get_slot(x, s)), err_msg=f"weights out of order at slot {s}")


@pytest.mark.clause("ADAM-API-WEIGHTS-2")
def test_set_weights_checks_length_and_shape(adam_api):
    opt = adam_api.make(**HP)
    var = adam_api.variable([1.0, 2.0])
    _step(adam_api, opt, [([0.5, -0.25], var)])
    weights = opt.get_weights()
    with pytest.raises(ValueError):
        opt.set_weights(weights[:-1])
    with pytest.raises(ValueError):
        opt.set_weights([weights[0], np.zeros(3, np.float32), weights[2]])


def _trajectory(api, opt, var, grads):
    out = []
    for g in grads:
        _step(api, opt, [(g, var)])
        out.append(api.numpy(var).copy())
    return np.array(out)


GRADS = [[0.5, -0.25], [1.0, 0.125], [-0.5, 2.0], [0.25, 0.25], [-1.0, 0.5], [0.75, -0.75]]


@pytest.mark.clause("ADAM-API-WEIGHTS-2")
@pytest.mark.parametrize("amsgrad", [False, True], ids=["adam", "amsgrad"])
def test_checkpoint_resume(adam_api, amsgrad):
    """get_weights mid-run into a fresh optimizer, then continue: the same trajectory, bit for bit."""
    whole = _trajectory(adam_api, adam_api.make(**HP, amsgrad=amsgrad), adam_api.variable([1.0, 2.0]), GRADS)
    first, var1 = adam_api.make(**HP, amsgrad=amsgrad), adam_api.variable([1.0, 2.0])
    _trajectory(adam_api, first, var1, GRADS[:3])
    saved = first.get_weights()
    fresh, var2 = adam_api.make(**HP, amsgrad=amsgrad), adam_api.variable(adam_api.numpy(var1))
    _step(adam_api, fresh, [([0.0, 0.0], var2)])  # creates the slots set_weights needs; a zero step moves nothing
    fresh.set_weights(saved)
    assert int(adam_api.numpy(fresh.iterations)) == 3, "set_weights must restore iterations"
    np.testing.assert_array_equal(_trajectory(adam_api, fresh, var2, GRADS[3:]), whole[3:])


@pytest.mark.clause("ADAM-API-CONFIG-1")
def test_get_config_keys(adam_api):
    config = adam_api.make(**HP, amsgrad=adam_api.amsgrad, name="Adam").get_config()
    assert set(config) == {"name", "learning_rate", "decay", "beta_1", "beta_2", "epsilon", "amsgrad"}
    assert (config["name"], float(config["learning_rate"]), float(config["beta_1"]), float(config["beta_2"]),
            float(config["epsilon"]), bool(config["amsgrad"])) == ("Adam", LR, B1, B2, EPS, adam_api.amsgrad)


@pytest.mark.clause("ADAM-API-CONFIG-2")
def test_from_config_round_trip(adam_api):
    opt = adam_api.make(**HP, amsgrad=adam_api.amsgrad)
    clone = type(opt).from_config(opt.get_config())
    a, b = adam_api.variable([1.0, 2.0]), adam_api.variable([1.0, 2.0])
    np.testing.assert_array_equal(_trajectory(adam_api, clone, b, GRADS), _trajectory(adam_api, opt, a, GRADS))


@pytest.mark.clause("ADAM-API-ITER-1")
def test_iterations_counts_calls(adam_api):
    opt = adam_api.make(**HP)
    a, b = adam_api.variable([1.0, 2.0]), adam_api.variable([3.0])
    assert int(adam_api.numpy(opt.iterations)) == 0
    _step(adam_api, opt, [([0.5, 0.5], a), ([1.0], b)])
    assert int(adam_api.numpy(opt.iterations)) == 1, "one call with two variables is one iteration"
    _step(adam_api, opt, [([0.5, 0.5], a)])
    assert int(adam_api.numpy(opt.iterations)) == 2


@pytest.mark.clause("ADAM-API-INPUTS-1")
def test_gradients_are_not_modified(adam_api):
    opt = adam_api.make(**HP)
    var = adam_api.variable([[1.0, 2.0], [3.0, 4.0]])
    dense = adam_api.gradient([[0.5, -0.25], [1.0, 2.0]])
    sparse = adam_api.sparse([[0.5, 0.5], [0.25, 0.25]], [1, 1], (2, 2))
    before = (adam_api.numpy(dense).copy(), adam_api.numpy(sparse.values).copy(), adam_api.numpy(sparse.indices).copy())
    opt.apply_gradients([(dense, var)])
    opt.apply_gradients([(sparse, var)])
    after = (adam_api.numpy(dense), adam_api.numpy(sparse.values), adam_api.numpy(sparse.indices))
    for x, y, what in zip(before, after, ("dense gradient", "sparse values", "sparse indices")):
        np.testing.assert_array_equal(y, x, err_msg=f"apply_gradients modified the caller's {what}")


@pytest.mark.clause("ADAM-ITER-3")
def test_all_none_gradients_raise(adam_api):
    opt = adam_api.make(**HP)
    var = adam_api.variable([1.0, 2.0])
    with pytest.raises(ValueError):
        opt.apply_gradients([(None, var)])


@pytest.mark.clause("ADAM-TF2-LR-1")
def test_lr_alias_wins(adam_api):
    opt = adam_api.make(learning_rate=0.5, lr=LR)
    assert float(opt.get_config()["learning_rate"]) == LR


@pytest.mark.clause("ADAM-TF2-CLIP-1")
def test_apply_gradients_does_not_clip(adam_api):
    """TF 2.0 clips only in minimize: clipvalue must not change what apply_gradients does."""
    clipped, plain = adam_api.make(**HP, clipvalue=2.0), adam_api.make(**HP)
    a, b = adam_api.variable([1.0, 2.0]), adam_api.variable([1.0, 2.0])
    for g in ([1.0, 1.0], [100.0, 1.0]):
        _step(adam_api, clipped, [(g, a)])
        _step(adam_api, plain, [(g, b)])
    np.testing.assert_array_equal(adam_api.numpy(clipped.get_slot(a, "m")), adam_api.numpy(plain.get_slot(b, "m")))


# --- minimize, get_gradients, get_updates (ADAM-API-MIN, -GRADS, -UPDATES; ADAM-TF2-CLIP-2) --------------------------
# The losses are linear, sum(c * x), so the gradient is c exactly; m and v after one step are then exact too, and the
# oracle's update_m / update_v (and clip_gradient) give their values.


def _first_moments(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The oracle's m and v after one step from zero slots with gradient ``g`` (exact for these dyadic inputs)."""
    return oracle.update_m(np.zeros_like(g), g, B1), oracle.update_v(np.zeros_like(g), g, B2)


def _assert_slots(api, opt, var, g, what):
    m, v = _first_moments(np.array(g, dtype=np.float64))
    np.testing.assert_array_equal(api.numpy(opt.get_slot(var, "m")), m, err_msg=f"m: {what}")
    np.testing.assert_array_equal(api.numpy(opt.get_slot(var, "v")), v, err_msg=f"v: {what}")


@pytest.mark.clause("ADAM-API-MIN-1")
@pytest.mark.parametrize("kind", ["list", "tuple", "callable"])
def test_minimize_var_list(adam_api, kind):
    """minimize(loss, var_list): a list, a tuple, or a callable whose variable the loss's first call creates."""
    opt, created, c = adam_api.make(**HP), [], [0.5, -0.25]

    def var():
        if not created:
            created.append(adam_api.variable([1.0, 2.0]))
        return created[0]

    loss = adam_api.linear_loss([(c, var)])
    if kind != "callable":
        var()
    adam_api.minimize(opt, loss, {"list": created, "tuple": tuple(created), "callable": lambda: created}[kind])
    assert int(adam_api.numpy(opt.iterations)) == 1, "minimize is one apply_gradients call"
    _assert_slots(adam_api, opt, created[0], c, "minimize must apply the gradient of the loss")


@pytest.mark.clause("ADAM-API-MIN-2")
def test_minimize_grad_loss(adam_api):
    """grad_loss weights the loss's elements: the gradient of c * x is grad_loss * c."""
    opt, var = adam_api.make(**HP), adam_api.variable([1.0, 2.0])
    c, w = np.array([0.5, 2.0]), np.array([2.0, -0.5])
    adam_api.minimize(opt, adam_api.linear_loss([(c, var)], reduce=False), [var], grad_loss=w)
    _assert_slots(adam_api, opt, var, c * w, "the gradient must be grad_loss * d(loss)/d(var)")


@pytest.mark.clause("ADAM-API-MIN-3")
@pytest.mark.parametrize("bad", ["ndarray", "float"])
def test_minimize_rejects_what_is_not_a_variable(adam_api, bad):
    opt, var = adam_api.make(**HP), adam_api.variable([1.0, 2.0])
    loss = adam_api.linear_loss([([0.5, -0.25], var)])
    with pytest.raises(ValueError):
        adam_api.minimize(opt, loss, [var, np.array([1.0, 2.0]) if bad == "ndarray" else 3.0])


CLIPS = {  # id -> (clipping keywords, the gradients of the loss); per tensor: the second tensor is inside the ball
    "norm": ({"clipnorm": 2.5}, [[3.0, 4.0], [0.75, 1.0], [0.0, 0.0]]),
    "value": ({"clipvalue": 2.0}, [[3.0, -4.0, 0.5]]),
    # Value first would give [1.75, 1.75] (its norm, 1.75 * sqrt(2), is inside 2.5); norm first gives [1.5, 1.75].
    "norm-then-value": ({"clipnorm": 2.5, "clipvalue": 1.75}, [[3.0, 4.0]]),
}


def _minimize_clipped(api, clip):
    kwargs, grads = CLIPS[clip]
    opt, xs = api.make(**HP, **kwargs), [api.variable(np.ones(len(g))) for g in grads]
    api.minimize(opt, api.linear_loss(list(zip(grads, xs))), xs)
    for x, g in zip(xs, grads):
        _assert_slots(api, opt, x, oracle.clip_gradient(np.array(g), **kwargs), f"{kwargs} on the gradient {g}")


@pytest.mark.clause("ADAM-TF2-CLIP-2")
@pytest.mark.parametrize("clip", ["norm", "value"])
def test_minimize_clips(adam_api, clip):
    """minimize clips each gradient (by its own norm, or its values) before the update; m and v show how."""
    _minimize_clipped(adam_api, clip)


@pytest.mark.clause("ADAM-TF2-CLIP-2")
def test_minimize_clips_norm_then_value(adam_api):
    """With clipnorm and clipvalue both set, the norm is clipped first."""
    _minimize_clipped(adam_api, "norm-then-value")


@pytest.mark.clause("ADAM-API-GRADS-1")
def test_get_gradients(adam_api):
    """get_gradients(loss, params) in a graph: the gradients; ValueError where one cannot be computed (None)."""
    got = adam_api.in_graph({}, [[1.0, 2.0], [3.0]], [[0.5, -0.25], [2.0]], "get_gradients")["gradients"]
    for g, c in zip(got, ([0.5, -0.25], [2.0])):
        np.testing.assert_array_equal(g, c)
    with pytest.raises(ValueError):
        adam_api.in_graph({}, [[1.0, 2.0], [3.0]], [[0.5, -0.25], None], "get_gradients")


@pytest.mark.clause("ADAM-TF2-CLIP-2")
def test_get_gradients_clips(adam_api):
    kwargs, grads = CLIPS["norm-then-value"]
    got = adam_api.in_graph(kwargs, [np.ones(2)], grads, "get_gradients")["gradients"]
    np.testing.assert_array_equal(got[0], oracle.clip_gradient(np.array(grads[0]), **kwargs),
                                  err_msg="get_gradients must clip as minimize does")


@pytest.mark.clause("ADAM-API-UPDATES-1")
def test_get_updates(adam_api):
    """get_updates(loss, params) in a graph: one apply_gradients of get_gradients' gradients."""
    out = adam_api.in_graph(HP, [[1.0, 2.0], [3.0]], [[0.5, -0.25], [2.0]], "get_updates")
    assert out["iterations"] == 1
    for m, v, c in zip(out["m"], out["v"], ([0.5, -0.25], [2.0])):
        em, ev = _first_moments(np.array(c))
        np.testing.assert_array_equal(m, em)
        np.testing.assert_array_equal(v, ev)


# --- the rest of the page's API ---------------------------------------------------------------------------------------


@pytest.mark.clause("ADAM-API-VARS-1")
def test_variables_is_weights(adam_api):
    opt = adam_api.make(**HP, amsgrad=adam_api.amsgrad)
    assert list(opt.variables()) == [] and list(opt.weights) == []
    _step(adam_api, opt, [([0.5, -0.25], adam_api.variable([1.0, 2.0])), ([1.0], adam_api.variable([3.0]))])
    variables, weights = list(opt.variables()), list(opt.weights)
    assert len(variables) == len(weights)
    for a, b in zip(variables, weights):
        np.testing.assert_array_equal(adam_api.numpy(a), adam_api.numpy(b), err_msg="variables() must list weights, in order")


@pytest.mark.clause("ADAM-API-ADDWEIGHT-1")
def test_add_weight(adam_api):
    opt = adam_api.make(**HP)
    _step(adam_api, opt, [([0.5, -0.25], adam_api.variable([1.0, 2.0]))])
    before = len(opt.weights)
    w = opt.add_weight("extra", shape=[2])
    assert adam_api.numpy(w).shape == (2,) and np.all(adam_api.numpy(w) == 0.0), "zeros by default"
    assert "float32" in str(w.dtype), f"float32 by default, not {w.dtype}"
    ones = adam_api.numpy(opt.add_weight("ones", shape=[3], dtype=adam_api.dtype("float64"), initializer="ones"))
    np.testing.assert_array_equal(ones, np.ones(3))
    assert len(opt.weights) == before, "an added weight is not one of the optimizer's weights"


@pytest.mark.clause("ADAM-API-APPLY-1")
@pytest.mark.parametrize("malformed", ["none", "number", "bare-entry"])
def test_malformed_grads_and_vars_raise_type_error(adam_api, malformed):
    opt = adam_api.make(**HP)
    with pytest.raises(TypeError):
        opt.apply_gradients({"none": None, "number": 5, "bare-entry": [0.5]}[malformed])


@pytest.mark.clause("ADAM-API-CONFIG-3")
def test_from_config_custom_objects_schedule(adam_api):
    """A schedule of the user's own class comes back from get_config through custom_objects, by its class name."""
    schedule_class, schedule = adam_api.custom_schedule()
    opt = adam_api.make(**{**HP, "learning_rate": schedule})
    config = opt.get_config()
    with pytest.raises((ValueError, TypeError)):  # at from_config (TF 2.0) or, at the latest, at the first step
        _step(adam_api, type(opt).from_config(dict(config)), [([0.5, -0.25], adam_api.variable([1.0, 2.0]))])
    clone = type(opt).from_config(dict(config), custom_objects={schedule_class.__name__: schedule_class})
    a, b = adam_api.variable([1.0, 2.0]), adam_api.variable([1.0, 2.0])
    np.testing.assert_array_equal(_trajectory(adam_api, clone, b, GRADS[:3]), _trajectory(adam_api, opt, a, GRADS[:3]))


@pytest.mark.clause("ADAM-API-CONFIG-3")
def test_get_config_samples_a_callable(adam_api):
    """A callable hyperparameter is saved as its value when get_config runs: from_config cannot re-create it."""
    box = [LR]
    opt = adam_api.make(**{**HP, "learning_rate": lambda: box[0]})
    assert float(opt.get_config()["learning_rate"]) == LR
    box[0] = 2 * LR
    assert float(opt.get_config()["learning_rate"]) == 2 * LR


def _assert_near_oracle(actual, expected, what):
    # float64 variables and dyadic inputs: the candidate's own rounding stays below 2^-45 of the value here, while
    # the wrong step count or learning rate moves it by more than 2^-12 (see ADAM-API-LR-1 / ADAM-API-ITER-2).
    np.testing.assert_allclose(actual, expected, rtol=2.0**-40, atol=0, err_msg=what)


def _expected_run(port, steps, iterations_after_first=None):
    """The variable after ``steps``, a list of (gradient, learning rate), from [1, 2], in float64, as ``port`` (the
    spec's NumPy port, with the deviations of a declared ``--profile``) computes it; ``iterations_after_first``:
    iterations is assigned that value after the first step."""
    rate = [steps[0][1]]
    opt, var = port(**{**HP, "learning_rate": lambda: rate[0]}), np.array([1.0, 2.0])
    for i, (g, lr) in enumerate(steps):
        rate[0] = lr
        opt.apply_gradients([(np.array(g), var)])
        if i == 0 and iterations_after_first is not None:
            opt.iterations = iterations_after_first
    return var


@pytest.mark.clause("ADAM-API-LR-1")
@pytest.mark.parametrize("given", ["tensor", "variable"])
def test_learning_rate_tensor_or_variable(adam_api, adam_oracle, given):
    """"A Tensor or a floating point value": a Tensor is its value; a Variable is read anew at every call."""
    lr = adam_api.tensor(LR) if given == "tensor" else adam_api.scalar_variable(0.0)
    opt, var = adam_api.make(**{**HP, "learning_rate": lr}), adam_api.variable([1.0, 2.0], "float64")
    steps = [(GRADS[0], LR)] if given == "tensor" else [(GRADS[0], 0.0), (GRADS[1], LR), (GRADS[2], 0.0)]
    for i, (g, rate) in enumerate(steps):
        if given == "variable":
            adam_api.assign(lr, rate)
        opt.apply_gradients([(adam_api.gradient(g, "float64"), var)])
        _assert_near_oracle(adam_api.numpy(var), _expected_run(adam_oracle, steps[: i + 1]),
                            f"step {i + 1} with learning rate {rate}")


@pytest.mark.clause("ADAM-API-ITER-2")
def test_assigned_iterations_set_the_next_step(adam_api, adam_oracle):
    """After the user assigns iterations = 9, the next call uses t = 10 and leaves iterations at 10."""
    opt, var = adam_api.make(**HP), adam_api.variable([1.0, 2.0], "float64")
    opt.apply_gradients([(adam_api.gradient(GRADS[0], "float64"), var)])
    adam_api.set_iterations(opt, 9)
    opt.apply_gradients([(adam_api.gradient(GRADS[1], "float64"), var)])
    assert int(adam_api.numpy(opt.iterations)) == 10
    expected = _expected_run(adam_oracle, [(GRADS[0], LR), (GRADS[1], LR)], iterations_after_first=9)
    _assert_near_oracle(adam_api.numpy(var), expected, "the step after iterations = 9 must use t = 10")


@pytest.mark.clause("ADAM-API-ALIAS-1")
def test_page_names_are_the_candidate(adam_aliases):
    """tf.keras.optimizers.Adam and the page's aliases name one class: the candidate (see the header for what they are)."""
    candidate, aliases = adam_aliases
    wrong = {name: obj for name, obj in aliases.items() if obj is not candidate}
    assert not wrong, "the page's names give another class here: " + "; ".join(
        f"{n} -> {getattr(o, '__module__', '?')}.{getattr(o, '__qualname__', o)}" for n, o in wrong.items())
