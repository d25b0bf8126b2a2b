"""What the optimizer receives in the fit modes, compared bit for bit with the vector's gradients.

``python -m tests.fit_gradients ADAPTER EXECUTION`` (with ``KERAS_BACKEND`` for Keras 3) runs a few vectors through
the adapter's fit session with a recording Adam, a subclass that copies every gradient it is given into a slot
``seen`` before its own update, and prints one JSON line: ``{"compared": n, "differences": [...]}``.  Run in a
process of its own (one framework per process).
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

from conformance.dtypes import NUMPY_DTYPES
from conformance.inputs import RunSpec
from tests.helpers import all_vectors

#: Vectors whose gradients span magnitudes, signs, zeros, several variables and dtypes.
VECTORS = ("dense/mixed-magnitudes", "dense/zero-gradient-after", "multivariable/two-shapes", "dtypes/all-four",
           "discriminating/tiny-gradients", "kernels/mixed-dtypes")


def recording_tf_keras() -> type:
    """tf_keras legacy Adam that copies each dense gradient into the slot ``seen``."""
    import tf_keras

    class Recording(tf_keras.optimizers.legacy.Adam):
        def _create_slots(self, var_list):
            super()._create_slots(var_list)
            for var in var_list:
                self.add_slot(var, "seen")

        def _resource_apply_dense(self, grad, var, apply_state=None):
            self.get_slot(var, "seen").assign(grad)
            return super()._resource_apply_dense(grad, var, apply_state)

    return Recording


def recording_keras3() -> type:
    """Keras 3 Adam that copies each gradient into a variable ``seen`` made like the variable."""
    import keras

    class Recording(keras.optimizers.Adam):
        def build(self, var_list):
            if self.built:
                return
            super().build(var_list)
            self.seen = [self.add_variable_from_reference(v, "seen") for v in var_list]

        def update_step(self, gradient, variable, learning_rate):
            self.assign(self.seen[self._get_variable_index(variable)], gradient)
            super().update_step(gradient, variable, learning_rate)

    return Recording


def seen(session, adapter: str, name: str) -> np.ndarray:
    """The gradient the optimizer last received for variable ``name``."""
    var = session.vars[name]
    if adapter == "tf_keras":
        return session.opt.get_slot(var, "seen").numpy()
    import keras

    return keras.ops.convert_to_numpy(session.opt.seen[session.opt._get_variable_index(var)])


def main(adapter: str, execution: str) -> dict:
    """Run the vectors; every step's received gradient against the vector's, as bits."""
    if adapter == "tf_keras":
        from conformance.adapters.tf_keras import TfKerasLegacyAdapter as Adapter

        candidate = recording_tf_keras()
    else:
        from conformance.adapters.keras3 import Keras3Adapter as Adapter

        candidate = recording_keras3()
    runner = Adapter(candidate, execution=execution)
    vectors = {v.id: v for v in all_vectors()}
    compared, differences = 0, []
    for vid in VECTORS:
        vector = vectors[vid]
        for dtype in vector.dtypes:
            if runner.unsupported(vector, dtype):
                continue
            spec = RunSpec.for_vector(vector, dtype)
            session = runner.start(spec)
            for s in range(len(vector.steps)):
                grads = vector.gradients(s)
                session.apply(grads, s)
                for name, g in grads.items():
                    want = np.asarray(g).astype(NUMPY_DTYPES[spec.dtype_of(name)])
                    have = seen(session, adapter, name)
                    compared += 1
                    if have.dtype != want.dtype or have.tobytes() != want.tobytes():
                        differences.append(f"{vid} [{dtype}] step {s + 1} {name}: received {have.tolist()}, "
                                           f"the vector's {want.tolist()}")
    return {"compared": compared, "differences": differences}


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
