"""Hostile and broken candidates for the plugin's own tests (each a NumPy port)."""

from __future__ import annotations

import threading

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


#: Lets the threads left hanging by ``HangsOnLargeVariables`` end: set by its test once the run is over.
RELEASE = threading.Event()


class HangsOnLargeVariables(reference.Adam):
    """Does not return for a variable of 18 elements (the 6 x 3 sparse vectors) until ``RELEASE``, then raises."""

    def apply_gradients(self, grads_and_vars, name=None):
        pairs = list(grads_and_vars)
        if any(np.size(v) == 18 for _, v in pairs):
            RELEASE.wait()
            raise RuntimeError("released after the run that timed it out")
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


class RebindsVariables(reference.Adam):
    """Updates copies of the variables (``var = var - ...``), the commonest wrapping mistake: nothing moves."""

    def apply_gradients(self, grads_and_vars, name=None):
        return super().apply_gradients([(g, np.array(v)) for g, v in grads_and_vars], name)


class SwapsSlots(reference.Adam):
    """Answers get_slot(var, "m") with v and the other way round."""

    def get_slot(self, var, slot_name):
        return super().get_slot(var, {"m": "v", "v": "m"}.get(slot_name, slot_name))


class StaleSlots(reference.Adam):
    """Returns a copy of each slot taken when it is first read, which does not follow later steps."""

    def get_slot(self, var, slot_name):
        cache = self.__dict__.setdefault("_copies", {})
        if (id(var), slot_name) not in cache:
            cache[(id(var), slot_name)] = np.array(super().get_slot(var, slot_name))
        return cache[(id(var), slot_name)]


class StuckIterations(reference.Adam):
    """iterations always reads 0."""

    @property
    def iterations(self):
        return 0


class MovesNoneGradients(reference.Adam):
    """Treats a None gradient as zero: the variable keeps moving with its momentum (ADAM-ITER-2)."""

    def apply_gradients(self, grads_and_vars, name=None):
        pairs = [(np.zeros_like(v) if g is None and id(v) in self._slots else g, v) for g, v in grads_and_vars]
        return super().apply_gradients(pairs, name)


class CrashesOnSparse(reference.Adam):
    """Kills its interpreter at the third step of any run with a sparse gradient: a segfault, as native code can."""

    def apply_gradients(self, grads_and_vars, name=None):
        pairs = list(grads_and_vars)
        if self.iterations == 2 and any(hasattr(g, "indices") for g, _ in pairs):
            import ctypes

            ctypes.string_at(0)  # reads address 0: SIGSEGV
        return super().apply_gradients(pairs, name)


class ExitsOnAmsgrad(reference.Adam):
    """Calls os._exit(7) at the first step with AMSGrad."""

    def apply_gradients(self, grads_and_vars, name=None):
        if self.amsgrad:
            import os

            os._exit(7)
        return super().apply_gradients(grads_and_vars, name)


class InterruptsOnSparse(reference.Adam):
    """Raises KeyboardInterrupt at the first sparse step: the process survives, the run stops."""

    def apply_gradients(self, grads_and_vars, name=None):
        pairs = list(grads_and_vars)
        if any(hasattr(g, "indices") for g, _ in pairs) and self.iterations == 1:
            raise KeyboardInterrupt
        return super().apply_gradients(pairs, name)
