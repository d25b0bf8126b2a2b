"""NumPy-protocol ports that kill their interpreter inside one API check, for tests/test_isolation.py."""

from __future__ import annotations

import os
import signal
from typing import Any

import numpy as np

import reference


class SegfaultsAfterResume(reference.Adam):
    """Sends itself SIGSEGV at the third apply_gradients call of an optimizer whose first call had only zero gradients
    and whose weights were set once, right after it: ``test_checkpoint_resume``'s resumed optimizer, and nothing else
    the kit runs (a vector's single-step mode sets the weights before every step)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls, self.zero_first, self.set_at = 0, False, []

    def set_weights(self, weights: Any) -> Any:
        self.set_at.append(self.calls)
        return super().set_weights(weights)

    def apply_gradients(self, grads_and_vars: Any, name: Any = None) -> Any:
        pairs = list(grads_and_vars)
        self.calls += 1
        if self.calls == 1:
            self.zero_first = all(g is not None and not np.any(np.asarray(g)) for g, _ in pairs)
        if self.zero_first and self.set_at == [1] and self.calls == 3:
            os.kill(os.getpid(), signal.SIGSEGV)  # what native code reading a bad pointer does to the process
        return super().apply_gradients(pairs, name)


class LacksOptionalApi(reference.Adam):
    """Has no ``get_slot_names`` (an AttributeError naming it) and raises NotImplementedError from ``get_config``: the
    checks that need them are unsupported, in process and under ``--isolate`` alike."""

    def __getattribute__(self, name: str) -> Any:
        if name == "get_slot_names":
            raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'", name=name, obj=self)
        return super().__getattribute__(name)

    def get_config(self) -> dict:
        raise NotImplementedError("no config in this port")
