"""Partial NumPy ports for the plugin's own tests: each lacks one part of the protocol, the way real ports do.

Each comes twice: built on the oracle (everything it implements conforms) and with a planted semantic
defect (epsilon on the bias-corrected root, ``Algorithm1Epsilon``) that must still fail and be named.
"""

from __future__ import annotations

from typing import Any

import reference
from reference import variants


class NoAmsgrad(reference.Adam):
    """Raises ``NotImplementedError`` when built with ``amsgrad=True``, as most ports without AMSGrad do."""

    def __init__(self, *args: Any, amsgrad: bool = False, **kwargs: Any) -> None:
        if amsgrad:
            raise NotImplementedError("AMSGrad is not implemented")
        super().__init__(*args, **kwargs)


class HiddenMoments(reference.Adam):
    """Keeps m and v to itself: ``get_slot`` raises ``NotImplementedError``."""

    def get_slot(self, var: Any, slot_name: str) -> Any:
        raise NotImplementedError("the moments are internal")


class Minimal:
    """The least the protocol asks: the constructor and ``apply_gradients`` updating arrays in place."""

    port = reference.Adam

    def __init__(self, learning_rate: Any = 0.001, beta_1: Any = 0.9, beta_2: Any = 0.999, epsilon: Any = 1e-7,
                 amsgrad: bool = False, **kwargs: Any) -> None:
        self._adam = self.port(learning_rate, beta_1, beta_2, epsilon, amsgrad, **kwargs)

    def apply_gradients(self, grads_and_vars: Any, name: str | None = None) -> None:
        self._adam.apply_gradients(grads_and_vars)


class NoSetWeights(Minimal):
    """Minimal plus what it can show (``iterations``, slots, weights, config), but no way to load a state."""

    @property
    def iterations(self) -> int:
        return self._adam.iterations

    def get_slot(self, var: Any, slot_name: str) -> Any:
        return self._adam.get_slot(var, slot_name)

    def get_slot_names(self) -> list[str]:
        return self._adam.get_slot_names()

    def get_weights(self) -> list:
        return self._adam.get_weights()

    def get_config(self) -> dict:
        return self._adam.get_config()



class NoAmsgradAlgorithm1(NoAmsgrad, variants.Algorithm1Epsilon):
    """NoAmsgrad with a planted defect."""


class HiddenMomentsAlgorithm1(HiddenMoments, variants.Algorithm1Epsilon):
    """HiddenMoments with a planted defect."""


class MinimalAlgorithm1(Minimal):
    """Minimal with a planted defect."""

    port = variants.Algorithm1Epsilon


class NoSetWeightsAlgorithm1(NoSetWeights):
    """NoSetWeights with a planted defect."""

    port = variants.Algorithm1Epsilon


class NotImplementedAtAll:
    """Raises ``NotImplementedError`` from everything: nothing can be compared, so the run must not pass."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def apply_gradients(self, grads_and_vars: Any, name: str | None = None) -> None:
        raise NotImplementedError("nothing is implemented yet")
