"""The loaded vector: its fields as the drivers use them, and the one-line error that names a bad one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
import functools
from typing import Any, Callable, Iterator

import numpy as np

from conformance.dtypes import variable_dtypes
from conformance.features import Feature, features
from conformance.load import vector_format

class VectorError(Exception):
    """A bad vector or vector file, as one line: ``file: vector 'id': field 'f': what is wrong``."""

    def __init__(self, path: Path | str, message: str, vector_id: str | None = None, field: str | None = None):
        self.path, self.vector_id, self.field = str(path), vector_id, field
        where = [self.path]
        if vector_id is not None:
            where.append(f"vector '{vector_id}'")
        if field:
            where.append(f"field '{field}'")
        super().__init__(": ".join(where + [message]))
        self.message = message

    def __reduce__(self) -> tuple:  # keeps its fields when sent from an --isolate child
        return VectorError, (self.path, self.message, self.vector_id, self.field)


class Named:
    """What names a vector's items, read from its record: collection needs no more (``files.Pending`` too)."""

    record: dict

    @property
    def id(self) -> str:
        return self.record["id"]

    @property
    def dtypes(self) -> list[str]:
        return self.record["dtypes"]

    @property
    def level(self) -> str:
        return self.record["level"]

    @property
    def clauses(self) -> list[str]:
        return self.record["clauses"]


@dataclass(frozen=True)
class Vector(Named):
    """A loaded vector.

    A literal vector's expectations were re-derived through the oracle when it
    was loaded (``expected``).  A large vector stores generator specs and
    digests instead of literals: its inputs are generated and checked, and its
    expectations re-derived and checked against their sha256, while it runs
    (``states``), so loading stays fast.
    """

    path: Path
    family: str
    record: dict
    expected: tuple[dict, ...] | None  # per step: {"iterations": int, var: {field: float64 array or None}}
    source: str = ""  # the sha256 of the file it came from

    @property
    def digests_verified(self) -> bool:
        """Whether a large vector's stored digests were found to be the oracle's: by a run in this session, or by an
        earlier run of this kit on the same file (the verified-vector cache)."""
        return self.__dict__.get("_digests_checked", False)

    def mark_digests_verified(self) -> None:
        """The oracle is deterministic: a large vector's digests are checked once."""
        object.__setattr__(self, "_digests_checked", True)

    @property
    def steps(self) -> list[dict]:
        return self.record["steps"]

    @property
    def size(self) -> int:
        """Elements in all variables together."""
        return sum(int(np.prod(v["shape"], dtype=np.int64)) for v in self.record["variables"].values())

    @property
    def amsgrad(self) -> bool:
        return self.record["amsgrad"]

    @property
    def flags(self) -> list[str]:
        return self.record["flags"]

    @property
    def non_contiguous(self) -> bool:
        """Whether its variables and gradients are handed over as strided or transposed views."""
        return "non-contiguous" in self.flags

    @property
    def constructed_with_defaults(self) -> bool:
        """Whether the candidate is built with no hyperparameter argument (``construct: defaults``)."""
        return self.record["construct"] == "defaults"

    @property
    def hyperparameter_specs(self) -> dict[str, Any]:
        """The ``hyperparameters`` field: numbers, ``{"callable": [...]}`` or ``{"schedule": [...]}``, ``decay``."""
        return self.record["hyperparameters"]

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Every variable's shape, by name, in the vector's order."""
        return vector_format.shapes(self.record)

    @property
    def features(self) -> list[Feature]:
        """The features a candidate needs to run it (``conformance.features``)."""
        return features(self.record)

    def variable_dtypes(self, dtype: str) -> dict[str, str]:
        """Each variable's dtype when the vector runs in ``dtype`` (its own in a mixed-dtype vector)."""
        return variable_dtypes(self.record, dtype)

    def checked(self, fn: Callable[[], Any], field: str) -> Any:
        """``fn()``, a ValueError from it becoming this vector's one-line VectorError naming ``field``."""
        try:
            return fn()
        except ValueError as exc:
            raise VectorError(self.path, str(exc), self.id, field) from None

    def initial(self, into: Callable[[str, tuple[int, ...]], np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Initial values of every variable (float64); ``into(name, shape)`` gives the array to write them in."""
        return {name: self.checked(lambda: vector_format.tensor(v["initial"], shape, into and into(name, shape)),
                                   f"variables.{name}.initial")
                for name, v in self.record["variables"].items() for shape in [tuple(v["shape"])]}

    def gradients(self, s: int) -> dict[str, Any]:
        """Step s's gradients: float64 array, IndexedSlices or None, by variable name."""
        return self.checked(lambda: vector_format.gradients_at(self.record, s), f"steps[{s}].gradients")

    def generated_gradients(self, s: int, into: Callable[[str, tuple[int, ...]], np.ndarray]
                            ) -> tuple[dict[str, Any], list[Callable[[], None]]]:
        """Step ``s``'s gradients, a generated dense one made into ``into(name, shape)``, and the checks of the
        generated ones' sha256 still to be made (each raises VectorError): the caller runs them when it likes."""
        shapes = self.shapes
        out, checks = {}, []
        for name, spec in self.steps[s]["gradients"].items():
            shape, field = shapes[name], f"steps[{s}].gradients"
            if "dense" in spec and isinstance(spec["dense"], dict):
                g, made = spec["dense"], into(name, shape)
                out[name] = vector_format.generated_values(g["seed"], g["scale"], g["exact_in"], shape, made)
                checks.append(functools.partial(self.checked, functools.partial(vector_format.check_generated, g, made),
                                                field))
            else:
                out[name] = self.checked(lambda: vector_format.gradient_value(spec, shape), field)
        return out, checks

    def recomputed_states(self) -> Iterator[dict]:
        """The oracle's state after each step, made again by the readable oracle, without the digest checks."""
        return vector_format.oracle_states(self.record)

    def hyperparameters_at(self, s: int) -> Any:
        """The oracle's ``Hyperparameters`` of 0-based step ``s`` (callables and schedules evaluated)."""
        return vector_format.hyperparameters_at(self.record, s)

    def hyperparameters(self, s: int) -> dict[str, float]:
        """The resolved hyperparameters of step s (as the oracle used them)."""
        return self.record["steps"][s]["hyperparameters"]

    def states(self, initial: dict | None = None, gradients: Any = None) -> Iterator[dict]:
        """The expected state after each step (float64 arrays), checked against the stored digests if large.

        A caller that holds the initial values and the gradients already passes them (``gradients(s)``).
        """
        if self.expected is not None:
            yield from self.expected
            return
        states = self.checked(lambda: vector_format.oracle_states(self.record, initial, gradients), "steps")
        checked = self.digests_verified
        for s, stored in enumerate(self.steps):
            state = self.checked(lambda: next(states), f"steps[{s}]")
            for name in {} if checked else stored["expected"]["variables"]:
                self.check_state_digests(s, name, {f: None if x is None else vector_format.array_digest(x)
                                                   for f, x in state[name].items()})
            yield state
        self.mark_digests_verified()

    def check_state_digests(self, s: int, name: str, have: dict[str, str | None]) -> None:
        """The sha256 of the oracle's state of one variable after step ``s`` (by field) against the stored ones;
        VectorError naming the first field that differs (a large vector's expectations are its digests)."""
        for f, digest in self.steps[s]["expected"]["variables"][name].items():
            mine = have.get(f)
            if (digest is None) != (mine is None) or (mine is not None and mine != digest["sha256"]):
                raise VectorError(self.path, "stale: the oracle's state does not match the stored sha256 "
                                  "(regenerate with `adam-conformance generate`)", self.id,
                                  f"steps[{s}].expected.variables.{name}.{f}")


