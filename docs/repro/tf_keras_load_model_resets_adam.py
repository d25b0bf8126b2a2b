"""tf_keras 2.21: ``load_model`` of a model saved as SavedModel or ``.keras`` gives back an Adam that starts over.

Standalone (NumPy and tf_keras only).  A model is trained three steps with ``tf_keras.optimizers.legacy.Adam``, saved
in each format ``model.save`` offers, loaded with ``tf_keras.models.load_model``, and stepped once more with the same
gradient as the original, which is stepped once more too.  The guide says the saved file keeps "the state of the
optimizer, allowing to resume training exactly where you left off": then the loaded model's variables equal the
original's bit for bit and its ``iterations`` is 4.  Prints one JSON line: format -> iterations after the step and
whether the variables are the original's.  Measured with tf_keras 2.21.0 (TensorFlow 2.21.0): h5 keeps the state; a
SavedModel (``save_format="tf"``) and ``.keras`` restart the optimizer at iterations 0 with zero moments (a SavedModel
keeps it for ``load_weights(path)`` after ``load_model``, the workaround given in tensorflow#44670; ``.keras`` does not).
"""

import json
import os
import tempfile

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tf_keras  # noqa: E402


def model() -> tf_keras.Model:
    m = tf_keras.Sequential([tf_keras.layers.Dense(2, input_shape=(3,))])
    m.compile(optimizer=tf_keras.optimizers.legacy.Adam(0.01), loss="mse")
    return m


def step(m: tf_keras.Model, value: float) -> None:
    grads = [np.full(v.shape, value, np.float32) for v in m.trainable_variables]
    m.optimizer.apply_gradients(zip(grads, m.trainable_variables))


original = model()
for value in (0.5, -0.25, 1.0):
    step(original, value)
folder = tempfile.mkdtemp()
saved = {"h5": os.path.join(folder, "m.h5"), "savedmodel": os.path.join(folder, "sm"),
         "keras": os.path.join(folder, "m.keras")}
for name, path in saved.items():
    original.save(path, **({"save_format": "tf"} if name == "savedmodel" else {}))
step(original, 0.75)
want = [v.numpy() for v in original.trainable_variables]

found = {}
for name, path in saved.items():
    for then_load_weights in (False, True):
        loaded = tf_keras.models.load_model(path)
        if then_load_weights:
            loaded.load_weights(path)
        step(loaded, 0.75)
        have = [v.numpy() for v in loaded.trainable_variables]
        found[name + (" + load_weights" if then_load_weights else "")] = {
            "iterations": int(loaded.optimizer.iterations.numpy()),
            "same": all(np.array_equal(a, b) for a, b in zip(have, want))}
print(json.dumps(found))
