"""Ports with one common mistake each, for the hints of ``conformance.judge.compare.port_mistakes`` (tests/test_hints.py)."""

from __future__ import annotations

import numpy as np

import reference


class SlotsByPosition(reference.Adam):
    """Binds m and v to a variable's position in the call, as a wrapper of a functional optimizer whose state is a
    list aligned with the call's variables: the i-th variable of every call is updated with the slots of the i-th
    variable first seen.  A call that leaves a variable out, or lists the variables in another order, updates each
    variable with another's m and v.  ``get_slot`` answers by variable."""

    def update_all(self, present, values, t):
        by_position = list(self._slots.values())  # first-seen order: the state list of the functional optimizer
        for (grad, var), slots in zip(present, by_position):
            self._update(var, grad, slots, self.hyperparameters_for(values, var.dtype), t)


class SlotsByCurrentPosition(reference.Adam):
    """As ``SlotsByPosition``, but ``get_slot`` too answers by position, the variable's in the latest call: the slots
    it shows are those its step was made with, which started from another variable's."""

    def apply_gradients(self, grads_and_vars, name=None):
        pairs = list(grads_and_vars)
        self._positions = [id(v) for g, v in pairs if g is not None]
        return super().apply_gradients(pairs, name)

    def update_all(self, present, values, t):
        by_position = list(self._slots.values())
        for (grad, var), slots in zip(present, by_position):
            self._update(var, grad, slots, self.hyperparameters_for(values, var.dtype), t)

    def get_slot(self, var, slot_name):
        return list(self._slots.values())[self._positions.index(id(var))][slot_name]


class DiscardsStridedUpdate(reference.Adam):
    """A kernel that needs contiguous memory: for a strided or transposed variable it updates contiguous temporaries
    of the variable and its slots, and never writes them back."""

    def _update(self, var, grad, slots, hp, t):
        if var.flags.c_contiguous:
            return super()._update(var, grad, slots, hp, t)
        return super()._update(np.ascontiguousarray(var), grad, {k: np.array(s) for k, s in slots.items()}, hp, t)


class SlotCopies(reference.Adam):
    """``get_slot`` returns a copy of the slot taken when it is first read: the update is right, the slots shown
    stay as they were then."""

    def get_slot(self, var, slot_name):
        copies = self.__dict__.setdefault("_copies", {})
        return copies.setdefault((id(var), slot_name), np.array(super().get_slot(var, slot_name)))
