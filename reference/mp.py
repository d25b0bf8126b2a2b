"""The oracle's algorithm in arbitrary precision (mpmath), to verify the float64 oracle.

Same clauses as ``reference.adam``, on lists of ``mpmath.mpf`` at ``DPS``
decimal digits; the inputs are the exact float64 values the oracle sees.
"""

from __future__ import annotations

from typing import Sequence

import mpmath

DPS = 60


def step(
    var: Sequence[float],
    grad: Sequence[float],
    m: Sequence[float],
    v: Sequence[float],
    vhat: Sequence[float] | None,
    lr: float,
    beta_1: float,
    beta_2: float,
    epsilon: float,
    t: int,
) -> tuple[list, list, list, list | None]:
    """One step of ADAM-UPDATE-1..4 (and ADAM-AMSGRAD-1/2 when ``vhat`` is given), exactly rounded to DPS digits."""
    with mpmath.workdps(DPS):
        mpf = mpmath.mpf
        lr, b1, b2, eps = mpf(lr), mpf(beta_1), mpf(beta_2), mpf(epsilon)
        alpha = lr * mpmath.sqrt(1 - b2**t) / (1 - b1**t)
        m_new = [b1 * mpf(mi) + (1 - b1) * mpf(gi) for mi, gi in zip(m, grad)]
        v_new = [b2 * mpf(vi) + (1 - b2) * mpf(gi) ** 2 for vi, gi in zip(v, grad)]
        denom_v = v_new if vhat is None else [max(mpf(h), vi) for h, vi in zip(vhat, v_new)]
        var_new = [mpf(x) - alpha * mi / (mpmath.sqrt(d) + eps) for x, mi, d in zip(var, m_new, denom_v)]
        return var_new, m_new, v_new, (None if vhat is None else denom_v)
