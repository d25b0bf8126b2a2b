"""Ports written for the deviation profile: each departs from the spec in several known ways at once.

Each is built from the wrong variants of ``reference/variants.py`` with ``variants.compose``, as a library
that stacks defects would be; the profile the kit reports for each must name exactly its deviations.
"""

from __future__ import annotations

from reference import variants as v

#: Epsilon on the bias-corrected root and a step count per variable: torch's and three other libraries' Adam.
TorchLike = v.compose(v.Algorithm1Epsilon, v.PerVariableStep)
#: A float64 variable updated with float32 slots, float32 arithmetic and epsilon on the root.
Float32Everywhere = v.compose(v.Float32State, v.Float32Arithmetic, v.Algorithm1Epsilon)
#: Epsilon on the root alone: matches ``--profile=Algorithm1Epsilon``.
RootEpsilon = v.Algorithm1Epsilon
#: Epsilon on the root, plus a further defect that a profile of the first alone must not hide.
RootEpsilonAndLazySparse = v.compose(v.Algorithm1Epsilon, v.LazySparse)
