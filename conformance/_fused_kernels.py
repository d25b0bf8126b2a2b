"""numba kernels of ``conformance.fused``: each line is the readable model's (``tolerance.ErrorModel._chunk``) or
comparison's (``compare.Comparison._tensor``) operation, for one element, in the same order.

No fastmath: every operation is the IEEE one NumPy performs, nothing is reassociated or contracted.
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
def model(n, chunk, g, sg, eg, seg, m0, sm0, v0, sv0, m1, sm1, v1, sv1, w, sw, x1, sx1, evar, sevar, emc, semc,
          evc, sevc, ehc, sehc, lx, slx, lm, slm, lv, slv, lh, slh, ox, om, ov, oh, loaded, f32, ftz, amsgrad,
          u, eta, tiny, largest, b1, b2, eps, d_b1, d_b2, d_eps, alpha, r_alpha, eps_lo):
    c_m, c_v = 3 * u * (1 - b1), 4 * u * (1 - b2)
    d_const, r_step = d_eps + 2 * eta, r_alpha + 3 * u
    for start in range(0, max(n, 1), chunk):
        stop = min(start + chunk, n)
        any_eg = False  # np.any(e_g) over the readable model's slice
        for i in range(start, stop):
            e = eg[i * seg]
            if ftz:
                a = abs(g[i * sg])
                e = e + (a if a < tiny else 0.0)
            if e != 0:
                any_eg = True
                break
        for i in range(start, stop):
            gi = g[i * sg]
            ag, am0, av0 = abs(gi), abs(m0[i * sm0]), abs(v0[i * sv0])
            am1, v1i = abs(m1[i * sm1]), v1[i * sv1]
            e_g = eg[i * seg]
            if ftz:
                e_g = e_g + (ag if ag < tiny else 0.0)
            if loaded:
                e_x, e_m = _load_error(lx[i * slx], f32, ftz, tiny), _load_error(lm[i * slm], f32, ftz, tiny)
                e_v, e_h = _load_error(lv[i * slv], f32, ftz, tiny), _load_error(lh[i * slh], f32, ftz, tiny)
            else:
                e_x, e_m, e_v, e_h = evar[i * sevar], emc[i * semc], evc[i * sevc], ehc[i * sehc]
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
            wi = w[i * sw]
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
            ex = e_x + step + u * abs(x1[i * sx1]) + 3 * eta
            over = ag * ag >= largest or alpha * am1 >= largest or ag + am0 >= largest
            if over or ex != ex or em != em or ev != ev:
                ex, em, ev = np.inf, np.inf, np.inf
                if amsgrad:
                    eh = np.inf
            ox[i], om[i], ov[i] = ex, em, ev
            if amsgrad:
                oh[i] = eh


@njit(**_OPTS)
def compare(have, want, err, se, scale):
    best, best_ratio, n_bad = 0, -1.0, 0
    for i in range(want.size):
        h, x = np.float64(have[i]), want[i]
        if not (np.isfinite(h) and np.isfinite(x)):
            return False, 0, 0.0, 0
        diff = abs(h - x)
        ratio = 0.0 if diff == 0 else diff / (scale * err[i * se])
        if ratio != ratio:
            return False, 0, 0.0, 0
        if ratio > best_ratio:
            best, best_ratio = i, ratio
        if ratio > 1.0:
            n_bad += 1
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
