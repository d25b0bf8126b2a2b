"""The Adam conformance kit: a pytest plugin that runs the vectors against any Adam implementation."""

from reference.adam import IndexedSlices, LearningRateSchedule

__all__ = ["IndexedSlices", "LearningRateSchedule"]
