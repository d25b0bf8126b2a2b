"""Hostile and broken candidates for the plugin's own tests (each a NumPy port)."""

from __future__ import annotations

import time

import numpy as np

import reference


class RaisesOnSparse(reference.Adam):
    """Raises on every IndexedSlices gradient."""

    def apply_gradients(self, grads_and_vars, name=None):
        pairs = list(grads_and_vars)
        if any(hasattr(g, "indices") for g, _ in pairs):
            raise RuntimeError("sparse gradients are not implemented")
        return super().apply_gradients(pairs, name)


class NaNAtStepTwo(reference.Adam):
    """Writes NaN into every variable at the second step."""

    def apply_gradients(self, grads_and_vars, name=None):
        pairs = list(grads_and_vars)
        result = super().apply_gradients(pairs, name)
        if self.iterations == 2:
            for _, var in pairs:
                var[...] = np.nan
        return result


class HangsOnLargeVariables(reference.Adam):
    """Never returns for a variable of 18 elements (the 6 x 3 sparse vectors)."""

    def apply_gradients(self, grads_and_vars, name=None):
        pairs = list(grads_and_vars)
        if any(np.size(v) == 18 for _, v in pairs):
            time.sleep(3600)
        return super().apply_gradients(pairs, name)


class Chatty(reference.Adam):
    """Prints on every step."""

    def apply_gradients(self, grads_and_vars, name=None):
        print("stepping!")
        return super().apply_gradients(grads_and_vars, name)


class FlatSlots(reference.Adam):
    """Returns its slots flattened (wrong shape)."""

    def get_slot(self, var, slot_name):
        return super().get_slot(var, slot_name).reshape(-1)


class BrokenConstructor(reference.Adam):
    def __init__(self, *args, **kwargs):
        raise RuntimeError("no GPU found")


NOT_A_CLASS = 42


class Nondeterministic(reference.Adam):
    """Every second instance moves its variables one ulp further (a stand-in for an unordered parallel reduction)."""

    instances = 0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        Nondeterministic.instances += 1
        self.nudge = Nondeterministic.instances % 2 == 0

    def apply_gradients(self, grads_and_vars, name=None):
        pairs = list(grads_and_vars)
        result = super().apply_gradients(pairs, name)
        if self.nudge:
            for _, var in pairs:
                var[...] = np.nextafter(var, np.inf)
        return result
