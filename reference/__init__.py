"""The float64 oracle of the Adam conformance kit (see ``spec/adam.md``).

``reference.adam`` holds one function per spec clause; ``reference.Adam`` is
the same algorithm behind the NumPy-port protocol, so it can run as a
candidate; ``reference.mp`` is the arbitrary-precision twin used to verify it.
"""

from reference.adam import (
    DEFAULTS,
    Hyperparameters,
    IndexedSlices,
    LearningRateSchedule,
    Slots,
    apply_gradients,
    step,
)
from reference.port import Adam

__all__ = [
    "Adam",
    "DEFAULTS",
    "Hyperparameters",
    "IndexedSlices",
    "LearningRateSchedule",
    "Slots",
    "apply_gradients",
    "step",
]
