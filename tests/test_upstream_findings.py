"""What the kit found in real frameworks, reproduced without the kit: if a framework changes, these fail and the
README's claims and the expectations files that record the finding must be revisited."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from tests.helpers import need

#: tf_keras legacy Adam, ``apply_gradients`` inside one ``tf.function``, called twice with the same two variables,
#: the second time in the other order; prints each variable's m, eagerly and traced.  Run in a process of its own:
#: TensorFlow does not share a test worker with the other frameworks.
TF_FUNCTION_SLOTS = """
import json, os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf, tf_keras

def run(traced):
    opt = tf_keras.optimizers.legacy.Adam(0.125)
    a, b = tf.Variable([1.0, 2.0]), tf.Variable([3.0, 4.0])
    opt._create_all_weights([a, b])

    def apply(pairs):
        opt.apply_gradients(pairs)

    step = tf.function(apply) if traced else apply
    ga, gb = tf.constant([1.0, 1.0]), tf.constant([-5.0, -5.0])
    step([(ga, a), (gb, b)])
    step([(gb, b), (ga, a)])
    return [opt.get_slot(a, "m").numpy().tolist(), opt.get_slot(b, "m").numpy().tolist()]

print(json.dumps({"eager": run(False), "traced": run(True)}))
"""


def test_tf_function_reuses_a_traces_slots_for_other_variables():
    """The second call reuses the first trace, whose slot lookups were made for the first order, so each variable's
    m is updated from the other's (eagerly each gets its own).  README, "In words"; tf_keras_legacy.yaml."""
    need("tf_keras")
    proc = subprocess.run([sys.executable, "-c", TF_FUNCTION_SLOTS], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    # beta_1 = 0.9: a's m is 0.9 * 0.1 + 0.1 * 1 = 0.19 and b's 0.9 * -0.5 + 0.1 * -5 = -0.95 eagerly.
    np.testing.assert_allclose(found["eager"], [[0.19, 0.19], [-0.95, -0.95]], rtol=1e-6)
    # Traced, the second call updates b from a's m and a from b's, each written to the other's slot.
    np.testing.assert_allclose(found["traced"], [[-0.41, -0.41], [-0.35, -0.35]], rtol=1e-6)
