"""Which operations XLA changes in TensorFlow's Adam kernel: eager and XLA against NumPy emulations, float32.

    python benchmarks/xla_operations.py [N]

Part 1 runs ``ResourceApplyAdam`` (the kernel behind tf_keras's legacy Adam) once eagerly and once inside
``tf.function(jit_compile=True)`` on N random elements (default 200000), then rebuilds each result bit for bit
from NumPy emulations of candidate operation orders: the kernel's order with every operation rounded
(``m + (g - m)*(1 - beta_1)``, ``v + (g*g - v)*(1 - beta_2)``, ``var - (m*alpha) / (sqrt(v) + epsilon)``), with
either moment update contracted into fused multiply-adds (FMA; v as one, ``fma(g*g - v, 1 - beta_2, v)``, or as
two nested, ``fma(fma(g, g, -v), 1 - beta_2, v)``), and with the division replaced by a multiplication by the
reciprocal.  The gradient is passed as an argument of the compiled step: an earlier version captured it as a
constant, XLA folded g*g at compile time, and the single FMA reproduced v bit for bit, hiding the nested form.

Part 2 runs tf_keras's legacy Adam under ``tf.function(jit_compile=True)`` for 30 steps on 1000 elements from zero
slots (30,000 element-steps), where v is small against g*g from step 2 on, and compares every step's m and v with
the emulations.  Measured with TensorFlow 2.21 on CPU: m is ``fma(g - m, 1 - beta_1, m)`` and v the nested form,
bit for bit at every step; the single FMA departs from step 2 (part 1 finds the same in one step:
the nested form bit for bit, the single FMA off in 331 of 200,000 v elements).  With ``XLA_FLAGS=--xla_cpu_max_isa=AVX`` (no FMA
instructions) or ``--xla_backend_optimization_level=0`` XLA's m and v equal the eager kernel's; with
``--xla_cpu_enable_fast_math=false`` nothing changes.  Spec section E says why the error model covers contraction.
tests/test_claims.py asserts the 30-step finding.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

F32 = np.float32


def fma(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``a*b + c`` rounded once to float32 (float32 inputs): the float64 product is exact; the float64 sum's rounding
    error (TwoSum) settles the one case where rounding twice could differ, a float64 sum on a float32 midpoint."""
    p, c = a.astype(np.float64) * b.astype(np.float64), c.astype(np.float64)
    s = p + c
    bb = s - p
    err = (p - (s - bb)) + (c - bb)
    r = s.astype(F32)
    mid = ((s.view(np.uint64) & np.uint64((1 << 29) - 1)) == np.uint64(1 << 28)) & (err != 0)
    up, down = mid & (r.astype(np.float64) < s) & (err > 0), mid & (r.astype(np.float64) > s) & (err < 0)
    r[up], r[down] = np.nextafter(r[up], F32(np.inf)), np.nextafter(r[down], F32(-np.inf))
    return r


def moment_forms(b1: np.float32, b2: np.float32, n: int) -> tuple[dict, dict]:
    """The emulations of m's and of v's update, by name: each a function of (moment, g)."""
    one = F32(1)
    c1, c2 = np.full(n, one - b1, dtype=F32), np.full(n, one - b2, dtype=F32)
    ms = {"m rounded twice": lambda m, g: m + (g - m) * (one - b1), "m as one FMA": lambda m, g: fma(g - m, c1, m)}
    vs = {"v rounded twice": lambda v, g: v + (g * g - v) * (one - b2),
          "v as one FMA": lambda v, g: fma(g * g - v, c2, v),
          "v as two nested FMAs": lambda v, g: fma(fma(g, g, -v), c2, v)}
    return ms, vs


def kernel(state: dict, hyper: dict, jit: bool | None) -> tuple[np.ndarray, ...]:
    """One ResourceApplyAdam on copies of ``state``, eagerly (None) or compiled by XLA (True)."""
    x, m, v = (tf.Variable(state[k]) for k in ("x", "m", "v"))

    def step(g: tf.Tensor) -> None:
        tf.raw_ops.ResourceApplyAdam(var=x.handle, m=m.handle, v=v.handle, grad=g, **hyper)

    # The gradient is an argument, as in training: captured as a constant, XLA would fold g*g at compile time
    # (rounded to float32), and v would come out as the single FMA fma(g*g - v, 1 - beta_2, v).
    (tf.function(step, jit_compile=True) if jit else step)(tf.constant(state["g"]))
    return x.numpy(), m.numpy(), v.numpy()


def emulations(state: dict, hyper: dict) -> dict[str, tuple[np.ndarray, ...]]:
    """Candidate operation orders in float32, each as (variable, m, v)."""
    x, m, v, g = state["x"], state["m"], state["v"], state["g"]
    one = F32(1)
    b1, b2, eps = hyper["beta1"], hyper["beta2"], hyper["epsilon"]
    alpha = F32(hyper["lr"] * F32(np.sqrt(one - hyper["beta2_power"])) / (one - hyper["beta1_power"]))
    mforms, vforms = moment_forms(b1, b2, len(x))
    out = {}
    for mn, mf in mforms.items():
        for vn, vf in vforms.items():
            mm, vv = mf(m, g), vf(v, g)
            den = np.sqrt(vv) + eps
            out[f"{mn}, {vn}, correctly rounded division"] = (x - (mm * alpha) / den, mm, vv)
            out[f"{mn}, {vn}, multiplication by 1/denominator"] = (x - (mm * alpha) * (one / den), mm, vv)
    return out


def main(n: int) -> None:
    rng = np.random.default_rng(1)
    state = {"x": rng.uniform(-1, 1, n).astype(F32), "m": (rng.standard_normal(n) * 1e-3).astype(F32),
             "v": (rng.random(n) * 1e-6).astype(F32), "g": (rng.standard_normal(n) * 1e-3).astype(F32)}
    t = 7
    hyper = {"lr": F32(0.01), "beta1": F32(0.9), "beta2": F32(0.999), "epsilon": F32(1e-7),
             "beta1_power": F32(F32(0.9) ** t), "beta2_power": F32(F32(0.999) ** t)}
    results = {"eager": kernel(state, hyper, None), "XLA": kernel(state, hyper, True)}
    print(f"TensorFlow {tf.__version__}, {n} float32 elements, one step at t = {t}, epsilon 1e-7")
    for where, got in results.items():
        same = [name for name, want in emulations(state, hyper).items()
                if all(np.array_equal(a, b) for a, b in zip(got, want))]
        print(f"{where:5}: reproduced bit for bit by: {'; '.join(same) or 'none of the emulations'}")
    for i, name in enumerate(("variable", "m", "v")):
        differ = int(np.sum(results["eager"][i] != results["XLA"][i]))
        print(f"XLA != eager in {name}: {differ} of {n} elements ({100 * differ / n:.2f}%)")


def trajectory(n: int = 1000, steps: int = 30) -> None:
    """tf_keras legacy Adam under XLA for ``steps`` steps from zero slots; each emulation of m and v against it."""
    import tf_keras

    rng = np.random.default_rng(3)
    gs = [(rng.standard_normal(n) * 1e-3 * rng.uniform(0.1, 10)).astype(F32) for _ in range(steps)]
    var = tf.Variable(rng.uniform(-1, 1, n).astype(F32))
    opt = tf_keras.optimizers.legacy.Adam(0.01)

    @tf.function(jit_compile=True)
    def step(g: tf.Tensor) -> None:
        opt.apply_gradients([(g, var)])

    got: dict[str, list[np.ndarray]] = {"m": [], "v": []}
    for g in gs:
        step(tf.constant(g))
        for k in got:
            got[k].append(opt.get_slot(var, k).numpy().copy())
    ms, vs = moment_forms(F32(0.9), F32(0.999), n)
    print(f"\ntf_keras legacy Adam under XLA, {steps} steps of {n} float32 elements from zero slots "
          f"(XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}):")
    for name, form in {**ms, **vs}.items():
        x, first = np.zeros(n, F32), None
        for t, g in enumerate(gs):
            x = form(x, g)
            if first is None and np.any(x != got[name[0]][t]):
                first = t + 1
        last = int(np.sum(x != got[name[0]][-1]))
        print(f"  {name:22}: " + ("bit for bit at every step" if first is None else
                                   f"first differs at step {first}; {last} of {n} differ at step {steps}"))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
    trajectory()
