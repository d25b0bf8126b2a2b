"""The vector format on the check-time side: how a stored vector decodes into the oracle's inputs, and the oracle's
stream of expected states over it.

A vector record is the parsed YAML of one vector (``vectors/schema.json``).
Its tensors are nested lists, or seeded generator specs whose sha256 is
checked here; its hyperparameters are numbers, per-step callables or a
schedule.  The loader, the runner and the generator all read vectors through
this module, so there is one decoding and one oracle stream.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import math
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from conformance.dtypes import NUMPY_DTYPES, PRECISION, exact_in, is_exact_in
from conformance.features import HYPERPARAMETERS
from reference import adam

FORMAT = "adam-conformance-vectors/1"
SPEC_VERSION = "1.0"
#: The bundled vector files, and their schema, shipped as package data of ``vectors``.
VECTOR_DIR = Path(str(importlib.resources.files("vectors")))
SCHEMA_PATH = VECTOR_DIR / "schema.json"
GENERATOR = "pcg64-uniform"


# --- tensors: literal lists, or seeded generators for large tensors ------------------------


def generated_values(seed: int, scale: float, exact_dtypes: list[str], shape: tuple[int, ...],
                     out: np.ndarray | None = None) -> np.ndarray:
    """Values in [-scale, scale) from PCG64(seed)'s raw 64-bit stream, exact in every dtype of ``exact_dtypes``.

    Each value is ``scale * k / 2**(p - 1)`` for an integer k of p bits, p the smallest precision among
    them: exact in all of them when scale is a power of two (others are rounded through each dtype).
    The raw bit stream is used (not ``Generator.random``) because NumPy keeps bit-generator streams stable
    across versions; the stored sha256 catches it if that ever changes.  ``out`` (float64, C-contiguous, of that
    size) is written instead of a new array, so that large vectors reuse one buffer from step to step.
    """
    n = int(np.prod(shape, dtype=np.int64))
    p = min((PRECISION[d] for d in exact_dtypes), default=53)
    bits, values = np.random.PCG64(seed), (np.empty(n) if out is None else out.reshape(-1))
    # Slice by slice (the raw stream continues from call to call), so no full-size integer temporaries are made;
    # the arithmetic is exact integer work and one product, so the values are those of one call over all n.
    for start in range(0, n, SLICE):
        k = (bits.random_raw(min(SLICE, n - start)) >> np.uint64(64 - p)).astype(np.int64) - (1 << (p - 1))
        np.multiply(k, scale * 2.0 ** (1 - p), out=values[start:start + SLICE])
    if math.frexp(scale)[0] != 0.5:
        values = exact_in(values, exact_dtypes)
    return values.reshape(shape)


def array_digest(values: np.ndarray) -> str:
    """sha256 of a tensor's float64 little-endian bytes (C order)."""
    data = np.ascontiguousarray(values, dtype="<f8")
    # memoryview cannot cast an empty array with a zero in its shape; its bytes are b"" all the same.
    return hashlib.sha256(memoryview(data).cast("B") if data.size else b"").hexdigest()


def tensor(spec: Any, shape: tuple[int, ...], out: np.ndarray | None = None) -> np.ndarray:
    """A stored tensor as float64: a (nested) literal, or a generator spec whose sha256 is checked (made in ``out``).

    ValueError when generated values do not match their recorded sha256.
    """
    if isinstance(spec, dict):
        values = generated_values(spec["seed"], spec["scale"], spec["exact_in"], shape, out)
        check_generated(spec, values)
        return values
    return np.asarray(spec, dtype=np.float64)


def check_generated(spec: dict, values: np.ndarray) -> None:
    """ValueError when values made from a generator spec do not match its recorded sha256."""
    if array_digest(values) != spec["sha256"]:
        raise ValueError("generated values do not match their recorded sha256 (the generator changed?)")


def shapes(vector: dict) -> dict[str, tuple[int, ...]]:
    """The declared shape of every variable."""
    return {name: tuple(v["shape"]) for name, v in vector["variables"].items()}


def initial_values(vector: dict) -> dict[str, np.ndarray]:
    """The initial value of every variable, float64."""
    return {name: tensor(v["initial"], tuple(v["shape"])) for name, v in vector["variables"].items()}


def gradient_value(spec: dict | None, shape: tuple[int, ...]) -> Any:
    """A stored gradient as the oracle takes it: dense float64 array, IndexedSlices, or None."""
    if spec is None:
        return None
    if "dense" in spec:
        return tensor(spec["dense"], shape)
    return adam.IndexedSlices(
        values=tensor(spec["values"], (len(spec["indices"]),) + shape[1:]),
        indices=np.asarray(spec["indices"], dtype=spec["index_dtype"]),
        dense_shape=tuple(spec["dense_shape"]),
    )


def gradients_at(vector: dict, s: int) -> dict[str, Any]:
    """The gradients of step s, by variable name (a variable absent from the step is not passed)."""
    shape = shapes(vector)
    return {name: gradient_value(g, shape[name]) for name, g in vector["steps"][s]["gradients"].items()}


# --- hyperparameters ----------------------------------------------------------------------


def value_at(spec: Any, s: int) -> float:
    """The value of a stored hyperparameter at 0-based step s: a number, ``{callable: [...]}`` or ``{schedule: [...]}``."""
    if isinstance(spec, dict):
        return float((spec.get("callable") or spec.get("schedule"))[s])
    return float(spec)


def hyperparameters_at(vector: dict, s: int) -> adam.Hyperparameters:
    """The hyperparameters the oracle uses at step s (iterations == s before the call).

    The exact oracle takes the values as given; the ``tf2`` oracle takes them as TF 2.0 stores them
    (ADAM-TF2-HYPER-1, ADAM-TF2-EPS-1), cast to the vector's one dtype (ADAM-DTYPE-1).
    """
    hp = vector["hyperparameters"]
    lr, b1, b2, eps = (value_at(hp[k], s) for k in HYPERPARAMETERS)
    decay = float(hp.get("decay", 0.0))
    if vector["oracle"] == "tf2":
        return adam.call_hyperparameters(lr, b1, b2, adam.effective_epsilon(eps), decay, s, float32_storage=True,
                                         dtype=NUMPY_DTYPES[vector["dtypes"][0]])
    return adam.call_hyperparameters(lr, b1, b2, eps, decay, s)


# --- the oracle over one vector ----------------------------------------------------


#: Variables larger than this are stepped through the oracle slice by slice (see ``_apply``).
SLICE = 1 << 16


def oracle_states(vector: dict, initial: dict | None = None,
                  gradients: Callable[[int], dict] | None = None) -> Iterator[dict]:
    """Run the oracle over a vector's inputs, one step at a time (only the current state is held).

    Yields ``{"iterations": n, name: {"variable": array, "m": array or None, "v": ..., "vhat": ...}}``;
    m and v are None for a variable not updated yet, vhat is absent without amsgrad.  ``initial`` and
    ``gradients(s)`` may be given by a caller that already has them (the runner), so large inputs are made once.
    """
    variables = initial if initial is not None else initial_values(vector)
    gradients = gradients or (lambda s: gradients_at(vector, s))
    slots: dict[str, adam.Slots] = {}
    iterations = 0
    for s in range(len(vector["steps"])):
        variables, slots, iterations = _apply(
            variables, slots, clipped(vector, gradients(s)), hyperparameters_at(vector, s), iterations, vector["amsgrad"])
        state: dict[str, Any] = {"iterations": iterations}
        for name, var in variables.items():
            slot = slots.get(name)
            state[name] = {"variable": var, "m": None if slot is None else slot.m, "v": None if slot is None else slot.v}
            if vector["amsgrad"]:
                state[name]["vhat"] = None if slot is None else slot.vhat
        yield state


def clipped(vector: dict, grads: dict[str, Any]) -> dict[str, Any]:
    """ADAM-CLIP-APPLY-1: a step's gradients as ``apply_gradients`` uses them when the vector asks for clipping (its
    ``clipping`` field); unchanged otherwise.  Only dense gradients reach here (``clipping_problem``)."""
    clipping = vector.get("clipping")
    if not clipping:
        return grads
    present = {name: g for name, g in grads.items() if g is not None}
    return {**grads, **adam.clip_in_apply(present, **clipping)}


def _representable(x: Fraction, dtype: str) -> bool:
    """Whether the rational ``x`` is a value of ``dtype``."""
    f = float(x)
    return Fraction(f) == x and is_exact_in(np.array([f]), dtype)


def _sum_of_squares(values: list[Fraction], dtype: str) -> Fraction | None:
    """The exact sum of the squares of ``values`` if a candidate in ``dtype`` computes it exactly in any order: every
    square a value of the dtype, and all of them multiples of one power of two below 2**p times it (so every
    partial sum is too); None otherwise."""
    squares = [x * x for x in values]
    if not all(_representable(q, dtype) for q in squares):
        return None
    quantum = Fraction(1, max((q.denominator for q in squares), default=1))
    total = sum(squares, Fraction(0))
    return total if total / quantum < 2 ** PRECISION[dtype] else None


def _root(x: Fraction) -> Fraction | None:
    """The exact square root of a non-negative rational, if it is rational."""
    n, d = math.isqrt(x.numerator), math.isqrt(x.denominator)
    return Fraction(n, d) if n * n == x.numerator and d * d == x.denominator else None


def clipping_problem(record: dict) -> tuple[str, str] | None:
    """(field, what is wrong) when a vector's clipping could round in a candidate, or None.

    The error model (spec E) has no term for a norm that rounds: a vector with clipping must be one whose clipped
    gradients a candidate computes exactly in every dtype it lists (ADAM-CLIP-APPLY-1), as the frameworks form them:
    the clipping value a value of the dtype; for ``clipnorm``, each tensor's sum of squares exact, ``g * clipnorm``
    exact, and where the tensor is clipped its norm and ``g * clipnorm / norm`` exact; for ``global_clipnorm``,
    ``1 / clipnorm`` exact, the sum of squares over all tensors exact, and where it clips the norm, ``1 / norm``
    and the scaled gradients exact.  Dense gradients only, finite, in a vector of one dtype per run.
    """
    clipping = record.get("clipping")
    if not clipping:
        return None
    (kind, value), = clipping.items()
    c = Fraction(value)
    dtypes = record["dtypes"]
    if "mixed" in dtypes:
        return "clipping", "clipping is not specified for variables of several dtypes (a mixed vector)"
    for dtype in dtypes:
        if not _representable(c, dtype) or (kind == "global_clipnorm" and not _representable(1 / c, dtype)):
            what = "1 / global_clipnorm" if _representable(c, dtype) else kind
            return f"clipping.{kind}", f"{what} is not exact in {dtype}, a dtype this vector lists"
    for s, step in enumerate(record["steps"]):
        grads = {}
        for name, g in step["gradients"].items():
            field = f"steps[{s}].gradients.{name}"
            if g is None:
                continue
            if "dense" not in g:
                return field, "clipping with a sparse gradient is not specified (dense gradients only)"
            values = np.asarray(g["dense"], dtype=np.float64).reshape(-1) if not isinstance(g["dense"], dict) else None
            if values is None or not np.all(np.isfinite(values)):
                return field, "clipping needs literal, finite gradients"
            grads[name] = [Fraction(float(x)) for x in values]
        for dtype in dtypes:
            problem = _clipping_exact(kind, c, grads, dtype)
            if problem:
                name, why = problem
                return f"steps[{s}].gradients" + (f".{name}" if name else ""), \
                    f"{why} in {dtype} with {kind} {value}: the error model has no term for a rounded norm (spec E)"
    return None


def _clipping_exact(kind: str, c: Fraction, grads: dict[str, list[Fraction]], dtype: str) -> tuple[str, str] | None:
    """(tensor, what rounds) for one step's gradients in one dtype, or None (see ``clipping_problem``)."""
    if kind == "clipvalue":
        return None  # a comparison with a value of the dtype: exact
    if kind == "clipnorm":
        for name, values in grads.items():
            total = _sum_of_squares(values, dtype)
            if total is None:
                return name, "its sum of squares is not exact"
            if not all(_representable(x * c, dtype) for x in values):
                return name, "g * clipnorm is not exact"
            if total > c * c:
                norm = _root(total)
                if norm is None or not _representable(norm, dtype):
                    return name, "its norm is not exact"
                if not all(_representable(x * c / norm, dtype) for x in values):
                    return name, "its clipped values are not exact"
        return None
    total = _sum_of_squares([x for values in grads.values() for x in values], dtype)
    if total is None:
        return "", "the sum of squares over all tensors is not exact"
    if total > c * c:
        norm = _root(total)
        if norm is None or not _representable(norm, dtype) or not _representable(1 / norm, dtype) \
                or not _representable(c / norm, dtype):
            return "", "the global norm, its inverse or clipnorm / norm is not exact"
        if not all(_representable(x * c / norm, dtype) for values in grads.values() for x in values):
            return "", "the clipped values are not exact"
    return None


def _apply(variables: dict, slots: dict, grads: dict, hp: adam.Hyperparameters, iterations: int,
           amsgrad: bool) -> tuple[dict, dict, int]:
    """``adam.apply_gradients``, and for a large variable the same call on one slice at a time.

    Once duplicates are summed (``dense_gradient``) every clause is element-wise, so slicing changes no
    value; it only keeps the oracle's temporaries in cache, which makes 10^7-element vectors several
    times faster.
    """
    if all(variables[n].size <= SLICE for n, g in grads.items() if g is not None):
        return adam.apply_gradients(variables, slots, grads, hp, iterations, amsgrad)
    new_vars, new_slots = dict(variables), dict(slots)
    for name, g in grads.items():
        if g is None:
            continue
        var = variables[name]
        dense = adam.dense_gradient(g, var.shape).reshape(-1)
        old = slots.get(name) or adam.init_slots(var.shape, amsgrad)
        out = {"variable": np.empty(var.shape), "m": np.empty(var.shape), "v": np.empty(var.shape),
               "vhat": np.empty(var.shape) if amsgrad else None}
        for start in range(0, var.size, SLICE):
            part = slice(start, start + SLICE)
            piece = adam.Slots(old.m.reshape(-1)[part], old.v.reshape(-1)[part],
                               None if old.vhat is None else old.vhat.reshape(-1)[part])
            v, sl, _ = adam.apply_gradients({name: var.reshape(-1)[part]}, {name: piece}, {name: dense[part]}, hp,
                                            iterations, amsgrad)
            for f, x in (("variable", v[name]), ("m", sl[name].m), ("v", sl[name].v), ("vhat", sl[name].vhat)):
                if x is not None:
                    out[f].reshape(-1)[part] = x
        new_vars[name] = out["variable"]
        new_slots[name] = adam.Slots(out["m"], out["v"], out["vhat"])
    return new_vars, new_slots, iterations + 1


def content_hash(vector: dict) -> str:
    """sha256 of the vector's canonical JSON, without its own ``sha256`` field."""
    body = {k: v for k, v in vector.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
