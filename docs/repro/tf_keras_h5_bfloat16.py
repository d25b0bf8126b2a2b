"""tf_keras 2.21: an ``.h5`` file of a model with a bfloat16 variable is written but cannot be read back.

Standalone (NumPy, TensorFlow and tf_keras only).  A one-layer model in bfloat16 is compiled with
``tf_keras.optimizers.legacy.Adam``, stepped once (so the file holds Adam's bfloat16 slots too), saved with
``model.save`` and ``save_weights`` to ``.h5``, and read back with ``load_model`` and ``load_weights``; then the
same without the step (the layer's own bfloat16 weights alone).  Prints one JSON line: what -> "ok" or the error.
Measured with tf_keras 2.21.0 (TensorFlow 2.21.0, h5py, ml_dtypes): both saves succeed and both loads raise
"ValueError: No cast function available.", with or without Adam's step: h5py stores bfloat16 as an opaque
two-byte type that tf_keras cannot cast back.  Reported upstream as keras-team/tf-keras#420 (closed, stale) and
keras-team/keras#17069 (open); Keras 3 reads bfloat16 from h5 since keras-team/keras#19091.  The kit's
``--checkpoint=model-h5`` and ``weights-h5`` rows meet it on ``dtypes/all-four-amsgrad[bfloat16]``.
"""

import json
import os
import tempfile

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402


def model() -> tf_keras.Model:
    m = tf_keras.Sequential([tf_keras.layers.Dense(2, input_shape=(3,), dtype="bfloat16")])
    m.compile(optimizer=tf_keras.optimizers.legacy.Adam(0.01), loss="mse")
    return m


def attempt(fn) -> str:
    try:
        fn()
        return "ok"
    except Exception as exc:  # noqa: BLE001 - what the library raises is the finding
        return f"{type(exc).__name__}: {exc}"


found = {}
folder = tempfile.mkdtemp()
for stepped in (True, False):
    original = model()
    if stepped:
        grads = [tf.constant(np.full(v.shape, 0.5), v.dtype) for v in original.trainable_variables]
        original.optimizer.apply_gradients(zip(grads, original.trainable_variables))
    tag = "after a step" if stepped else "no step"
    saved, weights = os.path.join(folder, f"m-{stepped}.h5"), os.path.join(folder, f"w-{stepped}.h5")
    found[f"model.save, {tag}"] = attempt(lambda: original.save(saved))
    found[f"load_model, {tag}"] = attempt(lambda: tf_keras.models.load_model(saved))
    found[f"save_weights, {tag}"] = attempt(lambda: original.save_weights(weights))
    found[f"load_weights, {tag}"] = attempt(lambda: model().load_weights(weights))
print(json.dumps(found))
