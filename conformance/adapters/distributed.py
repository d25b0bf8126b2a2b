"""Each step's gradient divided among ranks so that the engine's combination gives the vector's gradient bit for bit.

A distributed engine combines the ranks' gradients before the optimizer sees them: TensorFlow's strategies sum
them; torch's DDP divides each by the world size and sums (an average); FSDP2 divides by one factor before its
reduce-scatter and by another after it.  ``Combination`` describes that as ``(sum over ranks of g_r / pre) / post``
in the gradient's dtype, and ``split`` chooses the per-rank gradients:

- ``even``: every rank gets the same share, ``x = G * pre * post / N`` (``G / N`` where the engine sums, ``G``
  where it averages), where that is exact: every partial sum ``k * (x / pre)`` (k = 1..N, in any order of
  reduction) is representable in the dtype and the result equals ``G`` bit for bit.  An element where it is not
  (``G / 3`` rounds; ``G / 2`` loses a bit of a subnormal) falls back to ``one-rank`` for that element, and the split
  says how many elements did.
- ``one-rank``: rank 0 gets all of it (``G * pre * post``), the others ``-0.0``, the one value that adds nothing to
  any number (``x + -0.0 == x`` for every ``x``, ``+0.0`` included; ``+0.0`` would turn a ``-0.0`` into ``+0.0``).

An element that neither gives exactly (``2 * G`` overflows where DDP averages two ranks) makes the item
unsupported (``Unsupported``, naming the variable and the element).  An ``IndexedSlices`` is divided by rows
(``even``: contiguous blocks of rows in rank order, so that concatenating the ranks' rows gives the vector's rows
in order); each row then arrives from one rank only, so its values are scaled as in ``one-rank``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from conformance.dtypes import FORMATS, NUMPY_DTYPES
from conformance.errors import Unsupported
from reference.adam import IndexedSlices

SPLITS = ("even", "one-rank")


@dataclass(frozen=True)
class Combination:
    """How an engine combines the ranks' gradients, in their dtype: ``(sum over ranks of g_r / pre) / post``."""

    pre: float = 1.0
    post: float = 1.0
    words: str = "summed"

    @classmethod
    def summed(cls) -> "Combination":
        """The ranks' gradients are added (TensorFlow's strategies)."""
        return cls()

    @classmethod
    def averaged(cls, world_size: int, pre: float | None = None) -> "Combination":
        """Each rank's gradient divided by ``pre`` (default the world size), the sum by ``world_size / pre``."""
        pre = float(world_size if pre is None else pre)
        return cls(pre, world_size / pre, "averaged")

    def combine(self, parts: list[np.ndarray]) -> np.ndarray:
        """What the engine makes of ``parts`` (one array per rank, all in one dtype), summed in rank order."""
        dt = parts[0].dtype
        total = parts[0] / dt.type(self.pre) if self.pre != 1 else parts[0].copy()
        for part in parts[1:]:
            total = total + (part / dt.type(self.pre) if self.pre != 1 else part)
        return total / dt.type(self.post) if self.post != 1 else total


@dataclass
class Split:
    """The per-rank gradients of one step: ``parts[r]`` maps each variable to rank ``r``'s gradient (or None)."""

    parts: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)  # elements an even split could not give exactly


def same_bits(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise: ``a`` and ``b`` are the same number, the sign of zero included (NaN equals NaN)."""
    with np.errstate(invalid="ignore"):
        return ((a == b) & (np.signbit(a) == np.signbit(b))) | (np.isnan(a) & np.isnan(b))


def _exact_multiples(y: np.ndarray, n: int, dtype: np.dtype) -> np.ndarray:
    """Elementwise: ``k * y`` is representable in ``dtype`` for every k = 1..n (so any order of adding n copies of
    ``y`` is exact).  Narrow dtypes are checked in float64, where ``k * y`` is exact; float64 by its significant
    bits: ``y = M * 2**e`` with ``M`` odd needs ``bits(k * M) <= 53`` and a normal ``y``."""
    ok = np.ones(y.shape, dtype=bool)
    wide = y.astype(np.float64)
    finite = np.isfinite(wide)
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(2, n + 1):
            if dtype != np.float64:
                kx = wide * k
                ok &= ~finite | same_bits(kx.astype(dtype).astype(np.float64), kx)
            elif k & (k - 1) == 0:  # a power of two scales exactly unless it overflows
                ok &= ~finite | np.isfinite(wide * k)
            else:  # k's odd part times y's odd significand must fit in 53 bits (conservative: bits add up)
                mantissa, _ = np.frexp(np.where(finite, wide, 0.0))
                m = np.abs(mantissa * 2.0**53).astype(np.int64)
                odd = m // np.maximum(m & -m, 1)  # y's significand without its trailing zeros, below 2**53
                bits = np.floor(np.log2(np.maximum(odd, 1))).astype(np.int64) + 1
                k_odd = k // (k & -k)
                normal = (np.abs(wide) >= FORMATS["float64"].tiny) | (wide == 0)
                ok &= ~finite | ((bits + k_odd.bit_length() <= 53) & normal & np.isfinite(wide * k))
    return ok


def split_array(g: np.ndarray, world_size: int, how: str, comb: Combination, where: str) -> tuple[list[np.ndarray], int]:
    """``g`` (in the candidate's dtype) as ``world_size`` arrays whose combination ``comb`` is ``g`` bit for bit, and
    how many elements an even split had to give to rank 0 alone; Unsupported where no split gives it exactly."""
    dt = g.dtype
    neutral = np.full(g.shape, -0.0, dtype=dt)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        whole = (g.astype(np.float64) * (comb.pre * comb.post)).astype(dt)  # rank 0's share when it holds it all
        alone = [whole] + [neutral] * (world_size - 1)
        alone_ok = same_bits(comb.combine(alone), g)
        if how == "one-rank":
            parts, fell_back = alone, 0
            ok = alone_ok
        else:
            share = (g.astype(np.float64) * (comb.pre * comb.post / world_size)).astype(dt)
            even_ok = (same_bits(comb.combine([share] * world_size), g)
                       & _exact_multiples(share / dt.type(comb.pre), world_size, dt))
            parts = [np.where(even_ok, share, w) for w in alone]
            fell_back = int(np.count_nonzero(~even_ok & np.isfinite(g)))
            ok = even_ok | alone_ok
    if not np.all(ok):
        index = tuple(int(i) for i in np.argwhere(~ok)[0])
        raise Unsupported(f"{where}: the gradient {float(g[index])!r} at {index} cannot be divided among {world_size} ranks "
                          f"so that the engine's combination ({comb.words}) gives it exactly in {dt.name}")
    return parts, fell_back


def _split_rows(g: IndexedSlices, dtype: np.dtype, world_size: int, how: str, comb: Combination,
                where: str) -> list[IndexedSlices]:
    """An IndexedSlices divided by rows: contiguous blocks in rank order (``even``) or all to rank 0."""
    values = np.asarray(g.values).astype(dtype)
    rows = len(g.indices)
    if how == "one-rank":
        bounds = [0] + [rows] * world_size
    else:
        bounds = [round(r * rows / world_size) for r in range(world_size + 1)]
    scaled, _ = split_array(values, world_size, "one-rank", comb, where)  # each row arrives from one rank
    return [IndexedSlices(scaled[0][a:b], np.asarray(g.indices)[a:b], tuple(g.dense_shape))
            for a, b in zip(bounds, bounds[1:])]


def split(grads: dict[str, Any], dtypes: dict[str, str], world_size: int, how: str,
          combination: Combination | Callable[[str], Combination]) -> Split:
    """Step gradients (float64 arrays, IndexedSlices or None, as the runner gives them) divided among the ranks, each
    cast to its variable's dtype first: the engine's combination (one, or one per dtype name) gives that cast
    gradient bit for bit."""
    if how not in SPLITS:
        raise ValueError(f"unknown split {how!r} (expected one of {', '.join(SPLITS)})")
    out: list[dict[str, Any]] = [{} for _ in range(world_size)]
    notes = []
    for name, g in grads.items():
        dt = NUMPY_DTYPES[dtypes[name]]
        comb = combination if isinstance(combination, Combination) else combination(dtypes[name])
        if g is None:
            pieces: list[Any] = [None] * world_size
        elif isinstance(g, IndexedSlices):
            pieces = _split_rows(g, dt, world_size, how, comb, name)
        else:
            with np.errstate(over="ignore"):
                pieces, fell = split_array(np.asarray(g).astype(dt), world_size, how, comb, name)
            if fell:
                notes.append(f"{name}: {fell} element(s) given whole to rank 0 (an even share is not exact in {dt.name})")
        for r in range(world_size):
            out[r][name] = pieces[r]
    return Split(out, notes)
