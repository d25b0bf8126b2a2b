"""Ports with one common mistake each, for the hints of ``conformance.judge.compare.port_mistakes`` (tests/test_hints.py)."""

from __future__ import annotations

import numpy as np

import reference
from reference import variants


#: Binds m and v to a variable's position in the call (``get_slot`` answers by variable): the kit's own deviation.
SlotsByPosition = variants.SlotsByPosition


class SlotsByCurrentPosition(SlotsByPosition):
    """As ``SlotsByPosition``, but ``get_slot`` too answers by position, the variable's in the latest call: the slots
    it shows are those its step was made with, which started from another variable's."""

    def apply_gradients(self, grads_and_vars, name=None):
        pairs = list(grads_and_vars)
        self._positions = [id(v) for g, v in pairs if g is not None]
        return super().apply_gradients(pairs, name)

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
