"""Checks of the optimizer_v2 API (spec section I) and of behaviour no vector can express.

They run for candidates whose adapter claims that API (NumPy ports,
``tf_keras.optimizers.legacy.Adam``) through the ``adam_api`` fixture, which
creates variables and gradients in the candidate's framework.  Hyperparameters
and inputs are dyadic, so the expected values below are exact.
"""

from __future__ import annotations

import numpy as np
import pytest

LR, B1, B2, EPS = 2.0**-7, 0.875, 1.0 - 2.0**-10, 2.0**-23
HP = {"learning_rate": LR, "beta_1": B1, "beta_2": B2, "epsilon": EPS}


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
