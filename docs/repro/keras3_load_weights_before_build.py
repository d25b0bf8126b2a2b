"""Keras 3.15: ``load_weights`` into a compiled model whose optimizer is not built yet drops the optimizer's state.

Standalone (NumPy and Keras only; any backend).  A model is trained three steps with ``keras.optimizers.Adam``,
saved as ``.keras`` and as ``.weights.h5``, and the original is stepped once more.  Then: ``load_model`` of the
``.keras`` file; ``load_weights`` into a freshly compiled model (its optimizer not built, as after ``compile``); and
``load_weights`` after ``optimizer.build(model.trainable_variables)``; each is stepped once more with the same
gradient.  Prints one JSON line: case -> iterations after the step, whether the variables are the original's, and
Keras's warnings about the optimizer.  Measured with Keras 3.15.1 (JAX backend): ``.keras`` and the built optimizer
resume exactly (iterations 4); the unbuilt one warns "Skipping variable loading for optimizer ..." and starts over
(iterations 1): Keras 3 has no deferred restoration of an optimizer's state.
"""

import json
import os
import tempfile
import warnings

import keras
import numpy as np


def model() -> keras.Model:
    m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    m.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    return m


def step(m: keras.Model, value: float) -> None:
    m.optimizer.apply_gradients([(keras.ops.convert_to_tensor(np.full(v.shape, value, np.float32)), v)
                                 for v in m.trainable_variables])


original = model()
for value in (0.5, -0.25, 1.0):
    step(original, value)
folder = tempfile.mkdtemp()
whole, weights = os.path.join(folder, "m.keras"), os.path.join(folder, "m.weights.h5")
original.save(whole)
original.save_weights(weights)
step(original, 0.75)
want = [keras.ops.convert_to_numpy(v) for v in original.trainable_variables]

found = {}
for case in ("load_model .keras", "load_weights, optimizer not built", "load_weights, optimizer built"):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if case.startswith("load_model"):
            loaded = keras.models.load_model(whole)
        else:
            loaded = model()
            if case == "load_weights, optimizer built":
                loaded.optimizer.build(loaded.trainable_variables)
            loaded.load_weights(weights)
    step(loaded, 0.75)
    have = [keras.ops.convert_to_numpy(v) for v in loaded.trainable_variables]
    found[case] = {"iterations": int(keras.ops.convert_to_numpy(loaded.optimizer.iterations)),
                   "same": all(np.array_equal(a, b) for a, b in zip(have, want)),
                   "warned": any("Skipping variable loading for optimizer" in str(c.message) for c in caught)}
print(json.dumps(found))
