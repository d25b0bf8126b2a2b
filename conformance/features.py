"""The named features a vector can ask of a candidate, and that a candidate can lack.

One vocabulary for the adapters' ``lacking()``, the capabilities probed from a
candidate, ``--without``, the property tier and the expectations files, so a
misspelt name is an error where it is typed instead of a silently lost skip.
"""

from __future__ import annotations

from enum import Enum
from typing import Iterable


class Feature(str, Enum):
    """A feature of the page's Adam that a candidate may not implement (the value is what users type)."""

    CALLABLE_LEARNING_RATE = "callable learning_rate"
    CALLABLE_BETA_1 = "callable beta_1"
    CALLABLE_BETA_2 = "callable beta_2"
    CALLABLE_EPSILON = "callable epsilon"
    SCHEDULE = "schedule"
    DECAY = "decay"
    AMSGRAD = "amsgrad"
    PLAIN_ADAM = "plain adam"
    SPARSE = "sparse"
    DUPLICATE_INDICES = "duplicate indices"
    LATE_VARIABLE = "late variable"
    NONE_GRADIENT = "None gradient"
    CONFIG_ROUND_TRIP = "config round trip"
    STATE_LOADING = "state loading"  # the oracle's state can be given to the candidate (single-step mode)
    SLOTS = "slots"  # m, v and vhat can be read back
    NON_CONTIGUOUS = "non-contiguous"  # variables and gradients as strided or transposed views (kernels family)
    MIXED_DTYPES = "mixed dtypes"  # variables of several dtypes in one call (ADAM-DTYPE-2)
    CLIPPING = "clipping"  # clipnorm, global_clipnorm or clipvalue applied by apply_gradients (ADAM-CLIP-APPLY-1)
    FLOAT16 = "float16"
    BFLOAT16 = "bfloat16"
    FLOAT32 = "float32"
    FLOAT64 = "float64"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def callable(cls, name: str) -> "Feature":
        """The feature of a callable hyperparameter ``name`` (learning_rate, beta_1, beta_2, epsilon)."""
        return cls(f"callable {name}")

    @classmethod
    def parse(cls, names: Iterable[str], where: str) -> list["Feature"]:
        """User-typed feature names as features; ValueError naming ``where`` and the known names otherwise."""
        out = []
        for name in names:
            try:
                out.append(cls(name.strip()))
            except ValueError:
                known = ", ".join(repr(f.value) for f in cls)
                raise ValueError(f"{where}: unknown feature {name.strip()!r} (known: {known})") from None
        return out


HYPERPARAMETERS = ("learning_rate", "beta_1", "beta_2", "epsilon")


def features(record: dict) -> list[Feature]:
    """What a vector record asks of a candidate, in a fixed order (the first lacking one names the reason)."""
    hp = record["hyperparameters"]
    out = [Feature.callable(k) for k in HYPERPARAMETERS if isinstance(hp[k], dict) and "callable" in hp[k]]
    if isinstance(hp["learning_rate"], dict) and "schedule" in hp["learning_rate"]:
        out.append(Feature.SCHEDULE)
    if hp.get("decay"):
        out.append(Feature.DECAY)
    out.append(Feature.AMSGRAD if record["amsgrad"] else Feature.PLAIN_ADAM)
    if record.get("clipping"):
        out.append(Feature.CLIPPING)
    if "non-contiguous" in record["flags"]:
        out.append(Feature.NON_CONTIGUOUS)
    own = [v["dtype"] for v in record["variables"].values() if "dtype" in v]
    if own:
        out += [Feature.MIXED_DTYPES] + [Feature(d) for d in dict.fromkeys(own)]
    seen: set[str] = set()
    for s, step in enumerate(record["steps"]):
        grads = step["gradients"]
        sparse = [g for g in grads.values() if g is not None and "indices" in g]
        if sparse and Feature.SPARSE not in out:
            out.append(Feature.SPARSE)
        if any(len(set(g["indices"])) < len(g["indices"]) for g in sparse) and Feature.DUPLICATE_INDICES not in out:
            out.append(Feature.DUPLICATE_INDICES)
        if s > 0 and any(g is not None and name not in seen for name, g in grads.items()) and Feature.LATE_VARIABLE not in out:
            out.append(Feature.LATE_VARIABLE)
        # A variable updated before and not updated now (None, or not passed) must keep its moments.
        if any(grads.get(name) is None for name in seen) and Feature.NONE_GRADIENT not in out:
            out.append(Feature.NONE_GRADIENT)
        seen |= {name for name, g in grads.items() if g is not None}
    return out
