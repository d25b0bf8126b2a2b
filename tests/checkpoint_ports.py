"""NumPy-protocol ports for ``--checkpoint`` (tests/test_checkpoint.py): state loading that loses part of the state,
a resumed run that rounds differently, a restore that kills the process, and one whose state survives."""

from __future__ import annotations

import multiprocessing
import os
import signal
from typing import Any

import reference
from reference import variants


class Survives(reference.Adam):
    """The spec's own port: ``get_weights`` / ``set_weights`` carry iterations and every slot."""


class DropsIterationsOnLoad(reference.Adam):
    """``set_weights`` restores the slots but sets ``iterations`` back to 0: a resumed run starts its bias correction
    over (the bug of keras#13027 and tensorflow#48947, in a port)."""

    def set_weights(self, weights: Any) -> None:
        super().set_weights(weights)
        self._iterations = 0


class RoundsDifferentlyAfterLoad(reference.Adam):
    """Loads its state exactly, then steps with TF's kernel order for the moments (``KernelMomentForm``): within the
    bound, so the oracle passes it, but the resumed run is not the uninterrupted one bit for bit."""

    loaded = False

    def set_weights(self, weights: Any) -> None:
        super().set_weights(weights)
        self.loaded = True

    def update_m(self, m: Any, g: Any, beta_1: float) -> Any:
        return (variants.KernelMomentForm if self.loaded else reference.Adam).update_m(m, g, beta_1)

    def update_v(self, v: Any, g: Any, beta_2: float) -> Any:
        return (variants.KernelMomentForm if self.loaded else reference.Adam).update_v(v, g, beta_2)


class CrashesOnLoad(reference.Adam):
    """Kills its interpreter in ``set_weights``, as native code reading a bad pointer would, in a child process only
    (the resumed one: the capability probe loads a state in the kit's own process, and must live)."""

    def set_weights(self, weights: Any) -> None:
        if multiprocessing.parent_process() is not None:
            os.kill(os.getpid(), signal.SIGSEGV)
        super().set_weights(weights)
