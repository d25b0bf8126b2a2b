"""Candidates for the NumPy-port protocol's fine print (``tests/test_numpy_protocol.py``).

This module imports ``yaml`` as the stand-in for a library that a port wraps: the kit must name it, with its
version, in the report.
"""

from __future__ import annotations

from typing import Any

import yaml  # noqa: F401 - "the wrapped library", found by the kit among what this module imports

import reference


class UnknownVariableTypeError(reference.Adam):
    """``get_slot`` of a variable not updated yet raises TypeError (``None[...]``), where the protocol says KeyError."""

    def get_slot(self, var: Any, slot_name: str) -> Any:
        return self._slots.get(id(var))[slot_name]


class DeclaresItsLibrary(reference.Adam):
    """A port that says what it wraps."""

    adam_conformance_versions = {"mylib": "1.2"}


class DeclaresAnotherVersion(reference.Adam):
    """The same port against another version of the library."""

    adam_conformance_versions = {"mylib": "1.3"}


class V1Adam:
    """A wrapper of TF 1's ``tf.compat.v1.train.AdamOptimizer``, run through the tf_keras adapter.

    It has ``apply_gradients``, ``get_slot`` and ``get_slot_names``, as TF 1's optimizer does, and none of the
    optimizer_v2 API (``minimize`` with the v2 signature, ``get_gradients``, ``get_updates``, ``iterations``,
    ``get_config``, ``get_weights``, ...).
    """

    def __init__(self, learning_rate: Any = 0.001, beta_1: Any = 0.9, beta_2: Any = 0.999, epsilon: Any = 1e-7,
                 amsgrad: bool = False, name: str = "Adam", **kwargs: Any) -> None:
        import tensorflow as tf

        if amsgrad:
            raise NotImplementedError("TF 1's AdamOptimizer has no AMSGrad")
        if kwargs:
            raise NotImplementedError(f"TF 1's AdamOptimizer takes no {', '.join(kwargs)}")
        self._opt = tf.compat.v1.train.AdamOptimizer(learning_rate, beta_1, beta_2, epsilon, name=name)

    def apply_gradients(self, grads_and_vars: Any, name: str | None = None) -> Any:
        return self._opt.apply_gradients(list(grads_and_vars))

    def get_slot(self, var: Any, name: str) -> Any:
        return self._opt.get_slot(var, name)

    def get_slot_names(self) -> list[str]:
        return self._opt.get_slot_names()
