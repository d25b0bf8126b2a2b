"""What the kit found in real frameworks, reproduced without the kit: if a framework changes, these fail and the
README's claims and the expectations files that record the finding must be revisited."""

from __future__ import annotations

import numpy as np
import pytest


def test_tf_function_reuses_a_traces_slots_for_other_variables():
    """tf_keras legacy Adam, ``apply_gradients`` inside one ``tf.function``: a second call with the same two
    variables in the other order reuses the first trace, whose slot lookups were made for the first order, so each
    variable's m is updated from the other's (eager gives each its own).  README, "In words"; tf_keras_legacy.yaml."""
    tf = pytest.importorskip("tensorflow")
    tf_keras = pytest.importorskip("tf_keras")

    def run(traced: bool) -> tuple[np.ndarray, np.ndarray]:
        opt = tf_keras.optimizers.legacy.Adam(0.125)
        a, b = tf.Variable([1.0, 2.0]), tf.Variable([3.0, 4.0])
        opt._create_all_weights([a, b])

        def apply(pairs):
            opt.apply_gradients(pairs)

        step = tf.function(apply) if traced else apply
        ga, gb = tf.constant([1.0, 1.0]), tf.constant([-5.0, -5.0])
        step([(ga, a), (gb, b)])
        step([(gb, b), (ga, a)])
        return opt.get_slot(a, "m").numpy(), opt.get_slot(b, "m").numpy()

    eager, traced = run(False), run(True)
    # beta_1 = 0.9: a's m is 0.9 * 0.1 + 0.1 * 1 = 0.19 and b's 0.9 * -0.5 + 0.1 * -5 = -0.95 eagerly.
    np.testing.assert_allclose(eager, ([0.19, 0.19], [-0.95, -0.95]), rtol=1e-6)
    # Traced, the second call updates b from a's m and a from b's, each written to the other's slot.
    np.testing.assert_allclose(traced, ([-0.41, -0.41], [-0.35, -0.35]), rtol=1e-6)
