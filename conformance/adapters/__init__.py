"""Adapters: one small module per framework, translating the harness's requests into its API.

An adapter never computes Adam.  It builds the candidate and its variables,
delivers gradients and hyperparameters, and reads back the variable and
slots.  Where a framework uses another convention it translates faithfully
and lists the translation in ``translations`` (shown in the report); with
``raw=True`` the semantic translations are off.  What the framework cannot
express raises ``conformance.errors.Unsupported`` with the reason: a third outcome, neither pass
nor fail.  The base class is ``conformance.adapters.base.Adapter``; this
module imports no framework and no NumPy, so the plugin can list the adapters
at start-up for free.
"""

from __future__ import annotations

import importlib
from typing import Any

#: adapter name -> "module:Class" of its implementation (imported only when chosen).
ADAPTERS = {
    "numpy": "conformance.adapters.numpy_port:NumpyPortAdapter",
    "tf_keras": "conformance.adapters.tf_keras:TfKerasLegacyAdapter",
    "keras3": "conformance.adapters.keras3:Keras3Adapter",
    "tf1": "conformance.adapters.tf1:Tf1Adapter",
    "torch": "conformance.adapters.torch:TorchAdapter",
    "optax": "conformance.adapters.optax:OptaxAdapter",
}


def choose(spec: str) -> str:
    """The adapter for a ``module:attr`` candidate string, chosen by the module's top-level package."""
    module = spec.partition(":")[0]
    top = module.split(".")[0]
    if top == "tf_keras" or (top == "tensorflow" and "legacy" in module):
        return "tf_keras"
    if module.startswith("tensorflow.compat.v1.train"):
        return "tf1"
    if top in ("keras", "tensorflow"):
        return "keras3"
    if top in ("torch", "optax"):
        return top
    return "numpy"


def load(name: str) -> Any:
    """Import the adapter class ``name`` (one of ``ADAPTERS``)."""
    module, _, attr = ADAPTERS[name].partition(":")
    return getattr(importlib.import_module(module), attr)
