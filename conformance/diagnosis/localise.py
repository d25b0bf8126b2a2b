"""Localisation: where a failing run first leaves its bound, in the order of the update (spec E, "Diagnosis").

The tensors of one step are computed in the order m, v, vhat, the variable: at the first failing step, the first of
them out of bound names the clause that is broken.  In single-step mode every step starts from the oracle's state,
so that tensor is where the defect is.  A slot of the wrong dtype or shape is reported as structural, and its
values are still compared.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from conformance.judge.compare import Comparison

#: The order of the update: the first of these out of bound at the first failing step is where the defect is.
ORDER = ("m", "v", "vhat", "variable")
LOCUS = {"m": "ADAM-UPDATE-2", "v": "ADAM-UPDATE-3", "vhat": "ADAM-AMSGRAD-1", "variable": "ADAM-UPDATE-1 or ADAM-UPDATE-4"}
ONLY_VARIABLE = "one of ADAM-UPDATE-1 to ADAM-UPDATE-4"


@dataclass
class Localisation:
    """Where a run first leaves its bound, in the order of the update."""

    mode: str
    tensor: str | None  # "m", "v", "vhat", "variable"; None when only iterations or structure failed
    step: int | None
    conforming: list[str] = field(default_factory=list)  # compared before it in the order and within bound there
    not_exposed: list[str] = field(default_factory=list)
    iterations_step: int | None = None  # first step whose iterations is wrong (ADAM-ITER-1)
    structural: list[str] = field(default_factory=list)  # slots of the wrong dtype or shape, compared by value

    @property
    def clause(self) -> str | None:
        if self.step is None and self.tensor is not None:
            return "ADAM-DTYPE-1"  # only the structure of a slot is wrong
        if self.tensor == "variable" and {"m", "v"} <= set(self.not_exposed):
            return ONLY_VARIABLE
        return LOCUS.get(self.tensor or "")

    def text(self) -> str:
        parts = []
        if self.iterations_step is not None and (self.step is None or self.iterations_step <= self.step):
            parts.append(f"departs at ADAM-ITER-1: iterations is wrong from step {self.iterations_step}")
        if self.tensor is not None and self.step is None:
            parts.append(f"departs at ADAM-DTYPE-1: {joined(self.structural)} of the wrong dtype or shape, their values "
                         "within bound")
            return "; ".join(parts) + f" ({self.mode} mode)"
        if self.tensor is not None:
            what = "the variable" if self.tensor == "variable" else self.tensor
            line = f"departs at {self.clause}: {what} is wrong from step {self.step}"
            if self.clause == ONLY_VARIABLE:
                line += f"; only the variable was observed ({', '.join(self.not_exposed)} not exposed)"
            elif self.conforming:
                line += f"; {joined(self.conforming)} conform{'s' if len(self.conforming) == 1 else ''}"
            parts.append(line if not parts else line.replace("departs at", "then at", 1))
        if self.structural:
            parts.append(f"{joined(self.structural)} of the wrong dtype or shape: compared by value")
        return "; ".join(parts or ["no tensor left its bound"]) + f" ({self.mode} mode)"

    def as_dict(self) -> dict:
        return {"tensor": self.tensor, "step": self.step, "clause": self.clause, "conforming": self.conforming,
                "not_exposed": self.not_exposed, "iterations_step": self.iterations_step,
                "structural": self.structural, "mode": self.mode, "text": self.text()}


def joined(names: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def localise(cmp: Comparison, mode: str, structural: list[str] = ()) -> Localisation:
    """The first tensor, in the order of the update, out of bound at the first failing step of ``cmp``."""
    first: dict[str, int] = {}
    for w in cmp.violations:
        kind = w.tensor.rsplit(".", 1)[1]
        first[kind] = min(first.get(kind, w.step), w.step)
    iterations = [int(m.group(1)) for p in cmp.problems if (m := re.match(r"step (\d+): iterations is ", p))]
    hidden = cmp.observability()["not_exposed"]
    loc = Localisation(mode, None, None, not_exposed=[k for k in ORDER if k in hidden],
                       iterations_step=min(iterations) if iterations else None, structural=list(structural))
    if first:
        step = min(first.values())
        loc.tensor = next(k for k in ORDER if first.get(k) == step)
        loc.step = step
        loc.conforming = [k for k in ORDER[:ORDER.index(loc.tensor)] if k in cmp.checked and first.get(k, math.inf) > step]
    elif structural:  # the values are within bound: the slot's dtype or shape is the departure
        kinds = {name.rsplit(".", 1)[1] for name in structural}
        loc.tensor = next(k for k in ORDER if k in kinds)
    return loc


def structural_problems(outcome: Any) -> list[str]:
    """The slots (``a.m``, ...) the comparison with the spec found of the wrong dtype or shape."""
    found = [m.group(1) for p in outcome.comparison.problems if (m := re.match(r"(\S+\.(?:m|v|vhat)): (?:dtype|shape) ", p))]
    return sorted(set(found))


