"""Keras 3 on the torch backend: a model built under ``keras.device("cpu:0")`` cannot be trained by ``fit``.

Keras's torch ``Variable`` makes its value ``torch.nn.Parameter(...).to(get_device())``.  Under
``keras.device("cpu:0")`` (the form the docstring of ``keras.device`` shows) the device is ``cpu:0``, and
``Parameter.to("cpu:0")`` returns a copy of the parameter, not the parameter itself: the variable's value is then
a tensor that is not a leaf of autograd, whose ``.grad`` is never filled, so the trainer finds no gradient and
``fit`` raises ``ValueError: No gradients provided for any variable``.  The same model built under
``keras.device("cpu")`` (or under no scope) trains.  Seen with Keras 3.15.1 and torch 2.13.0 (CPU).

Run: ``KERAS_BACKEND=torch python docs/repro/keras3_torch_cpu0_fit.py``; it prints one line per device string and
exits 1 while the bug is there (0 once both train).
"""

import os
import sys

os.environ["KERAS_BACKEND"] = "torch"

import keras  # noqa: E402
import numpy as np  # noqa: E402


class Linear(keras.Model):
    """One weight w; the loss is sum(w * x), so its gradient is x."""

    def __init__(self):
        super().__init__()
        self.w = self.add_weight(shape=(2,), initializer="ones")

    def call(self, x):
        loss = keras.ops.sum(self.w * x[0])
        self.add_loss(loss)
        return loss


def trains(device: str) -> str:
    with keras.device(device):
        model = Linear()
    model.compile(optimizer=keras.optimizers.SGD(1.0))
    leaf = model.w.value.is_leaf
    try:
        model.fit(np.array([[0.5, 0.25]], np.float32), batch_size=1, epochs=1, verbose=0)
    except ValueError as exc:
        return f"{device}: weight is a leaf: {leaf}; fit raised ValueError: {exc}"
    return f"{device}: weight is a leaf: {leaf}; fit trained: w = {model.w.numpy().tolist()}"


if __name__ == "__main__":
    lines = [trains("cpu"), trains("cpu:0")]
    print("\n".join(lines))
    sys.exit(1 if any("raised" in line for line in lines) else 0)
