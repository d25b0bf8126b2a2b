"""numba kernels of ``conformance.judge.compiled``: each line is the readable oracle's (``reference.adam.step``), model's
(``tolerance.ErrorModel._chunk``) or comparison's (``compare.Comparison._tensor``) operation, for one element, in
the same order.

No fastmath: every operation is the IEEE one NumPy performs, nothing is reassociated or contracted, so the
results are those of the readable definitions bit for bit (``tests/test_compiled.py``).  What makes them fast is only
how the work is laid out: each slice's element loop reads contiguous arrays and writes rows of its own, so that
LLVM makes it a vector loop (in place, the outputs would alias the inputs and LLVM would keep the loop scalar),
and every kernel works on a range of elements and lets go of the GIL, so that ``conformance.judge.compiled`` can share a
tensor among the cores with threads.
``cache=True`` keeps the compiled code beside this file, so only the first run on a machine compiles.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_OPTS = dict(cache=True, error_model="numpy", nogil=True)


@njit(**_OPTS)
def _max(a, b):  # np.maximum: NaN when either is NaN
    return a if (a >= b or a != a) else b


@njit(**_OPTS)
def _min(a, b):  # np.minimum: NaN when either is NaN
    return a if (a <= b or a != a) else b


@njit(**_OPTS)
def _load_error(x, f32, ftz, tiny):  # ErrorModel._load_error of one value
    err = abs(np.float64(np.float32(x)) - x) if f32 else abs(x - x)
    if ftz and abs(x) < tiny:
        err = abs(x)
    return err


@njit(**_OPTS)
def _cut(x, stride, start, stop):
    """Elements start..stop of an input: an array's own (stride 1), or as many copies of a scalar (stride 0)."""
    return x[start:stop] if stride else x[:stop - start]


@njit(**_OPTS)
def _slice(n, g, eg, m0, v0, m1, v1, w, x1, evar, emc, evc, ehc, lx, lm, lv, lh, ox, om, ov, oh, loaded, f32,
           ftz, amsgrad, u, eta, tiny, largest, b1, b2, eps, d_b1, d_b2, d_eps, alpha, r_alpha, eps_lo):
    """ErrorModel._chunk on one slice of n elements: contiguous inputs, outputs that alias none of them."""
    c_m, c_v = 3 * u * (1 - b1), 4 * u * (1 - b2)
    d_const, r_step = d_eps + 2 * eta, r_alpha + 3 * u
    any_eg = False  # np.any(e_g) over the readable model's slice
    for i in range(n):
        e = eg[i]
        if ftz:
            a = abs(g[i])
            e = e + (a if a < tiny else 0.0)
        if e != 0:
            any_eg = True
            break
    for i in range(n):
        gi = g[i]
        ag, am0, av0 = abs(gi), abs(m0[i]), abs(v0[i])
        am1, v1i = abs(m1[i]), v1[i]
        e_g = eg[i]
        if ftz:
            e_g = e_g + (ag if ag < tiny else 0.0)
        if loaded:
            e_x, e_m = _load_error(lx[i], f32, ftz, tiny), _load_error(lm[i], f32, ftz, tiny)
            e_v, e_h = _load_error(lv[i], f32, ftz, tiny), _load_error(lh[i], f32, ftz, tiny)
        else:
            e_x, e_m, e_v, e_h = evar[i], emc[i], evc[i], ehc[i]
        em = b1 * e_m + 3 * u * (am0 + am1) + c_m * ag + 4 * eta
        ev = b2 * e_v + 4 * u * (av0 + v1i) + c_v * (gi * gi) + 5 * eta
        if any_eg:
            em = em + (1 - b1) * e_g
            ev = ev + (1 - b2) * (2 * ag + e_g) * e_g
        if d_b1 != 0:
            em = em + d_b1 * (am0 + ag)
        if d_b2 != 0:
            ev = ev + d_b2 * (av0 + gi * gi)
        if amsgrad:
            eh = _max(e_h, ev)
            ew = eh
        else:
            eh = 0.0
            ew = ev
        wi = w[i]
        root = np.sqrt(wi)
        e_root = _min(ew / (root + np.sqrt(_max(wi - ew, 0.0))), np.sqrt(ew))
        if ew == 0:
            e_root = 0.0
        den = root + eps
        e_den = e_root + 2 * u * den + d_const
        den_lo = _max(den - e_den, eps_lo)
        delta = alpha * am1 / den
        step = 0.0 if delta == 0 else delta * (r_step + e_den / den_lo)
        step = step + (0.0 if em == 0 else alpha * em / den_lo)
        ex = e_x + step + u * abs(x1[i]) + 3 * eta
        over = ag * ag >= largest or alpha * am1 >= largest or ag + am0 >= largest
        if over or ex != ex or em != em or ev != ev:
            ex, em, ev, eh = np.inf, np.inf, np.inf, (np.inf if amsgrad else eh)
        ox[i], om[i], ov[i], oh[i] = ex, em, ev, eh


@njit(**_OPTS)
def model(lo, hi, n, chunk, g, sg, eg, seg, m0, sm0, v0, sv0, m1, sm1, v1, sv1, w, sw, x1, sx1, evar, sevar, emc,
          semc, evc, sevc, ehc, sehc, lx, slx, lm, slm, lv, slv, lh, slh, ox, om, ov, oh, loaded, f32, ftz, amsgrad,
          u, eta, tiny, largest, b1, b2, eps, d_b1, d_b2, d_eps, alpha, r_alpha, eps_lo, rows):
    """ErrorModel._chunk over the model's slices that start in lo..hi (multiples of ``chunk``) of a tensor of n.

    A scalar input (stride 0) comes as at least ``chunk`` copies of it; ``rows`` is (4, chunk) of scratch.
    """
    for start in range(lo, max(hi, 1), chunk):
        stop = min(start + chunk, n)
        m = stop - start
        _slice(m, _cut(g, sg, start, stop), _cut(eg, seg, start, stop), _cut(m0, sm0, start, stop),
               _cut(v0, sv0, start, stop), _cut(m1, sm1, start, stop), _cut(v1, sv1, start, stop),
               _cut(w, sw, start, stop), _cut(x1, sx1, start, stop), _cut(evar, sevar, start, stop),
               _cut(emc, semc, start, stop), _cut(evc, sevc, start, stop), _cut(ehc, sehc, start, stop),
               _cut(lx, slx, start, stop), _cut(lm, slm, start, stop), _cut(lv, slv, start, stop),
               _cut(lh, slh, start, stop), rows[0], rows[1], rows[2], rows[3], loaded, f32, ftz, amsgrad, u, eta,
               tiny, largest, b1, b2, eps, d_b1, d_b2, d_eps, alpha, r_alpha, eps_lo)
        ox[start:stop] = rows[0, :m]
        om[start:stop] = rows[1, :m]
        ov[start:stop] = rows[2, :m]
        if amsgrad:
            oh[start:stop] = rows[3, :m]


@njit(**_OPTS)
def _adam(n, x0, m0, v0, h0, g, ox, om, ov, oh, amsgrad, alpha, b1, c1, b2, c2, eps):
    """``reference.adam.step`` on one slice of n elements, each operation the readable one, in its order."""
    for i in range(n):
        gi = g[i]
        m = b1 * m0[i] + c1 * gi  # update_m
        v = b2 * v0[i] + c2 * (gi * gi)  # update_v
        w = _max(h0[i], v) if amsgrad else v  # update_vhat
        ox[i] = x0[i] - (alpha * m) / (np.sqrt(w) + eps)  # update_variable
        om[i], ov[i], oh[i] = m, v, w


@njit(**_OPTS)
def oracle(lo, hi, chunk, x, m, v, h, g, bx, bm, bv, bh, amsgrad, alpha, b1, c1, b2, c2, eps, rows):
    """Elements lo..hi of one step of the oracle, slice by slice: the state (x, m, v, and h under AMSGrad) is
    updated in place, the state before the step written into bx, bm, bv, bh; ``rows`` is (4, chunk) of scratch."""
    for start in range(lo, hi, chunk):
        stop = min(start + chunk, hi)
        k = stop - start
        _adam(k, x[start:stop], m[start:stop], v[start:stop], h[start:stop], g[start:stop], rows[0], rows[1],
              rows[2], rows[3], amsgrad, alpha, b1, c1, b2, c2, eps)
        bx[start:stop] = x[start:stop]
        bm[start:stop] = m[start:stop]
        bv[start:stop] = v[start:stop]
        x[start:stop] = rows[0, :k]
        m[start:stop] = rows[1, :k]
        v[start:stop] = rows[2, :k]
        if amsgrad:
            bh[start:stop] = h[start:stop]
            h[start:stop] = rows[3, :k]


@njit(**_OPTS)
def _ratios(have, want, err, scale, out):
    """``|have - want| / (scale * err)`` of one slice into ``out``: (every element and ratio finite, count over 1)."""
    finite, bad = True, 0
    for i in range(want.size):
        h, x = np.float64(have[i]), want[i]
        diff = abs(h - x)
        ratio = 0.0 if diff == 0 else diff / (scale * err[i])
        finite &= np.isfinite(h) & np.isfinite(x) & (ratio == ratio)
        if ratio > 1.0:
            bad += 1
        out[i] = ratio
    return finite, bad


@njit(**_OPTS)
def compare(lo, hi, chunk, have, want, err, se, scale, row):
    """Elements lo..hi of ``Comparison._tensor``'s finite case, slice by slice (``row``: one slice of scratch):
    (all finite, first index of the largest ratio, that ratio, count over 1).  A scalar ``err`` (stride 0) comes
    as at least ``chunk`` copies of it."""
    best, best_ratio, n_bad = lo, -1.0, 0
    for start in range(lo, hi, chunk):
        stop = min(start + chunk, hi)
        finite, bad = _ratios(have[start:stop], want[start:stop], _cut(err, se, start, stop), scale, row)
        if not finite:
            return False, 0, 0.0, 0
        n_bad += bad
        for i in range(stop - start):  # the first element with the largest ratio
            if row[i] > best_ratio:
                best, best_ratio = start + i, row[i]
    return True, best, best_ratio, n_bad


@njit(**_OPTS)
def same(have, want, f32):
    for i in range(want.size):
        if f32:
            a, b = np.float32(have[i]), np.float32(want[i])
        else:
            a, b = np.float64(have[i]), want[i]
        if not (a == b or (a != a and b != b)):
            return False
    return True
