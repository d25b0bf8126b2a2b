"""The Adam conformance kit: a pytest plugin that runs the vectors against any Adam implementation.

``conformance.IndexedSlices`` and ``conformance.LearningRateSchedule`` are the
types of the NumPy-port protocol.  They are looked up on first use, so that
loading the plugin imports no NumPy.
"""

from __future__ import annotations

from typing import Any

__all__ = ["IndexedSlices", "LearningRateSchedule"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from reference import adam

        return getattr(adam, name)
    raise AttributeError(f"module 'conformance' has no attribute {name!r}")
