"""Which operations XLA changes in TensorFlow's Adam kernel: one step on random float32 state, eager and XLA.

    python benchmarks/xla_operations.py [N]

Runs ``ResourceApplyAdam`` (the kernel behind tf_keras's legacy Adam) once eagerly and once inside
``tf.function(jit_compile=True)`` on N random elements (default 200000), then rebuilds each result bit for bit
from NumPy emulations of candidate operation orders: the kernel's order with every operation rounded
(``m + (g - m)*(1 - beta_1)``, ``v + (g*g - v)*(1 - beta_2)``, ``var - (m*alpha) / (sqrt(v) + epsilon)``), with
either moment update contracted into one fused multiply-add (FMA), and with the division replaced by a
multiplication by the reciprocal. An emulation that reproduces all N elements of m, v and the variable names
what the compiled kernel does. Spec section E says which of these the error model covers and why.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

F32 = np.float32


def fma(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``a*b + c`` with the product exact (float32 inputs, float64 arithmetic), rounded to float32 at the end."""
    return (a.astype(np.float64) * b.astype(np.float64) + c.astype(np.float64)).astype(F32)


def kernel(state: dict, hyper: dict, jit: bool | None) -> tuple[np.ndarray, ...]:
    """One ResourceApplyAdam on copies of ``state``, eagerly (None) or compiled by XLA (True)."""
    x, m, v = (tf.Variable(state[k]) for k in ("x", "m", "v"))

    def step() -> None:
        tf.raw_ops.ResourceApplyAdam(var=x.handle, m=m.handle, v=v.handle, grad=state["g"], **hyper)

    tf.function(step, jit_compile=True)() if jit else step()
    return x.numpy(), m.numpy(), v.numpy()


def emulations(state: dict, hyper: dict) -> dict[str, tuple[np.ndarray, ...]]:
    """Candidate operation orders in float32, each as (variable, m, v)."""
    x, m, v, g = state["x"], state["m"], state["v"], state["g"]
    one = F32(1)
    b1, b2, eps = hyper["beta1"], hyper["beta2"], hyper["epsilon"]
    alpha = F32(hyper["lr"] * F32(np.sqrt(one - hyper["beta2_power"])) / (one - hyper["beta1_power"]))
    ms = {"m rounded twice": m + (g - m) * (one - b1), "m as one FMA": fma(g - m, np.full_like(m, one - b1), m)}
    vs = {"v rounded twice": v + (g * g - v) * (one - b2), "v as one FMA": fma(g * g - v, np.full_like(v, one - b2), v)}
    out = {}
    for mn, mm in ms.items():
        for vn, vv in vs.items():
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


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
