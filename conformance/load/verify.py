"""Check a vector record: its inputs against the declared shapes and dtypes, its expectations re-derived through
the oracle (or its stored sha256 for a large vector).  Every problem is one ``VectorError`` line."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from conformance.dtypes import MIXED, is_exact_in
from conformance.judge.compare import first_mismatch
from conformance.load import vector_format
from conformance.load.vector import Vector, VectorError

# --- consistency checks ---------------------------------------------------------------


def _array(path: Path, vid: str, field: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise VectorError(path, "ragged or non-numeric array", vid, field) from None
    if arr.shape != shape:
        raise VectorError(path, f"shape {list(arr.shape)} does not match the declared shape {list(shape)}", vid, field)
    return arr


def _check_finite(path: Path, vid: str, field: str, arr: np.ndarray) -> None:
    if not np.all(np.isfinite(arr)):
        where = "; allowed only in gradients of a vector flagged 'non-finite'" if ".gradients." in field else ""
        raise VectorError(path, f"non-finite value (NaN or Inf) in an input{where}", vid, field)


def _check_exact(path: Path, vid: str, field: str, arr: np.ndarray, dtypes: list[str]) -> None:
    for name in dtypes:
        if not is_exact_in(arr, name):
            raise VectorError(path, f"value not exactly representable in {name}, a dtype this vector lists", vid, field)


def _inputs(path: Path, record: dict) -> Iterator[tuple[str, np.ndarray | None, list[str]]]:
    """Check shapes and names of every input; yield (field, array, dtypes it must be exact in) for the value checks.

    A generator spec yields None: its values are produced, and checked against
    their sha256, when the vector runs.  A variable's inputs must be exact in its dtypes (its own in a mixed
    vector, ADAM-DTYPE-2), a hyperparameter in every dtype of the vector.
    """
    vid, variables, n = record["id"], record["variables"], len(record["steps"])
    listed = [d for d in record["dtypes"] if d != MIXED]
    dtypes = {name: [var["dtype"]] if "dtype" in var else listed for name, var in variables.items()}
    shapes = {}
    for name, var in variables.items():
        shapes[name] = tuple(var["shape"])
        yield _input(path, vid, f"variables.{name}.initial", var["initial"], shapes[name], dtypes[name])
    everywhere = sorted(set(listed).union(*dtypes.values()))
    for key, spec in record["hyperparameters"].items():
        field = f"hyperparameters.{key}"
        if isinstance(spec, dict):
            values = next(iter(spec.values()))
            if len(values) != n:
                raise VectorError(path, f"{len(values)} per-step values for {n} steps", vid, field)
            yield field, np.asarray(values, dtype=np.float64), everywhere
        else:
            yield field, np.asarray(spec, dtype=np.float64), everywhere
    for s, step in enumerate(record["steps"]):
        for name, g in step["gradients"].items():
            field = f"steps[{s}].gradients.{name}"
            if name not in shapes:
                raise VectorError(path, f"gradient for undeclared variable {name!r}", vid, field)
            if g is None:
                continue
            shape = shapes[name]
            if "dense" in g:
                yield _input(path, vid, field + ".dense", g["dense"], shape, dtypes[name])
                continue
            if tuple(g["dense_shape"]) != shape:
                raise VectorError(path, f"dense_shape {g['dense_shape']} is not the variable's shape {list(shape)}", vid, field)
            if not shape:
                raise VectorError(path, "a sparse gradient needs a variable with at least one axis", vid, field)
            if any(i >= shape[0] for i in g["indices"]):
                raise VectorError(path, f"index out of range for {shape[0]} rows", vid, field + ".indices")
            yield _input(path, vid, field + ".values", g["values"], (len(g["indices"]),) + shape[1:], dtypes[name])
        if set(step["expected"]["variables"]) != set(shapes):
            raise VectorError(path, "expected states must list every declared variable", vid, f"steps[{s}].expected.variables")


def _check_mixed(path: Path, record: dict) -> None:
    """ADAM-DTYPE-2: a vector lists ``mixed`` alone, and then every variable has a dtype of its own; else none has."""
    vid, mixed = record["id"], MIXED in record["dtypes"]
    if mixed and len(record["dtypes"]) != 1:
        raise VectorError(path, "'mixed' must be the only dtype a vector lists", vid, "dtypes")
    if mixed and record["oracle"] != "exact":
        raise VectorError(path, "a mixed vector needs oracle 'exact' (the tf2 oracle rounds to one dtype)", vid, "oracle")
    for name, var in record["variables"].items():
        if ("dtype" in var) != mixed:
            why = "a variable of a mixed vector needs a dtype" if mixed else "only a vector listing 'mixed' gives a " \
                                                                            "variable a dtype of its own"
            raise VectorError(path, why, vid, f"variables.{name}.dtype")


def _input(path: Path, vid: str, field: str, spec: Any, shape: tuple[int, ...],
           dtypes: list[str]) -> tuple[str, Any, list[str]]:
    if not isinstance(spec, dict):
        return field, _array(path, vid, field, spec, shape), dtypes
    missing = sorted(set(dtypes) - set(spec["exact_in"]))
    if missing:
        raise VectorError(path, f"generated values are not made exact in {missing[0]}, a dtype this vector lists", vid,
                          field + ".exact_in")
    return field, None, dtypes


def is_digest(record: dict) -> bool:
    """Large vectors store sha256 digests of their expected states instead of literals."""
    first = next(iter(record["steps"][0]["expected"]["variables"].values()))
    return isinstance(first["variable"], dict)


def verify_record(path: Path, family: str, record: dict) -> Vector:
    """Check one schema-valid vector record and re-derive its expectations through the oracle; VectorError if it is wrong.

    ``path`` only names where the record came from in error messages (a scenario built in memory has none).
    """
    vid = record["id"]
    if record["oracle"] == "tf2" and len(record["dtypes"]) != 1:
        raise VectorError(path, "a vector with oracle 'tf2' must list exactly one dtype", vid, "dtypes")
    _check_mixed(path, record)
    exact_hypers = record["oracle"] == "exact" and record["construct"] == "explicit"
    # NaN and Inf gradients are allowed only in vectors that declare them (ADAM-UPDATE-5); never elsewhere.
    nonfinite_ok = "non-finite" in record["flags"]
    for field, arr, dtypes in _inputs(path, record):
        if arr is None:
            continue
        if not (nonfinite_ok and ".gradients." in field):
            _check_finite(path, vid, field, arr)
        if field.startswith("hyperparameters."):
            if exact_hypers:
                _check_exact(path, vid, field, arr, sorted(set(dtypes) | {"float32"}))
        else:
            _check_exact(path, vid, field, np.where(np.isfinite(arr), arr, 0.0), dtypes)
    clipping = vector_format.clipping_problem(record)
    if clipping:
        raise VectorError(path, clipping[1], vid, clipping[0])
    if not all(math.isfinite(float(h)) for st in record["steps"] for h in st["hyperparameters"].values()):
        raise VectorError(path, "non-finite resolved hyperparameter", vid, "steps.hyperparameters")
    if is_digest(record):
        _check_hash(path, record)
        return Vector(path=path, family=family, record=record, expected=None)

    try:
        oracle = list(vector_format.oracle_states(record))
    except (ValueError, KeyError, IndexError) as exc:
        raise VectorError(path, f"the oracle cannot run this vector: {exc}", vid) from None
    expected = []
    for s, (stored, derived) in enumerate(zip(record["steps"], oracle)):
        exp = stored["expected"]
        if exp["iterations"] != derived["iterations"]:
            raise VectorError(path, f"stale: iterations {exp['iterations']}, the oracle gives {derived['iterations']}",
                              vid, f"steps[{s}].expected.iterations")
        step: dict[str, Any] = {"iterations": exp["iterations"]}
        for name, want in derived.items():
            if name == "iterations":
                continue
            step[name] = {}
            for f, oracle_arr in want.items():
                field = f"steps[{s}].expected.variables.{name}.{f}"
                have = exp["variables"][name].get(f)
                if (have is None) != (oracle_arr is None):
                    raise VectorError(path, f"stale: stored {'null' if have is None else 'values'}, the oracle gives "
                                      f"{'null' if oracle_arr is None else 'values'}", vid, field)
                if have is None:
                    step[name][f] = None
                    continue
                if isinstance(have, dict):
                    raise VectorError(path, "a digest in a vector that stores literal states", vid, field)
                arr = _array(path, vid, field, have, oracle_arr.shape)
                k = first_mismatch(arr, oracle_arr)
                if k is not None:
                    raise VectorError(path, f"stale: element {k} is {float(arr.flat[k])!r}, the oracle gives "
                                      f"{float(oracle_arr.flat[k])!r} (regenerate with `adam-conformance generate`)", vid, field)
                step[name][f] = arr
        expected.append(step)
    _check_hash(path, record)  # after the oracle: a stale value is named more precisely than a hash can
    return Vector(path=path, family=family, record=record, expected=tuple(expected))


def _check_hash(path: Path, record: dict) -> None:
    if vector_format.content_hash(record) != record["sha256"]:
        raise VectorError(path, "content hash mismatch: the vector was edited by hand (regenerate it)", record["id"], "sha256")
