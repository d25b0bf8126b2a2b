"""The scenario table: what each vector feeds an optimizer, and why.

Each ``Scenario`` is declarative: hyperparameters, variables, per-step
gradients and the clauses it tests.  ``vectors/generate.py`` runs them through
the oracle and writes one YAML file per family.  Inputs come from
``random.Random(seed)`` (stable across Python versions and platforms) and are
rounded so that they are exact in every dtype the vector lists.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from conformance.dtypes import DYADIC, exact_in, finfo

#: Exact in bfloat16 too (8 significant bits).
DYADIC_BF16 = {"learning_rate": 2.0**-6, "beta_1": 0.75, "beta_2": 1.0 - 2.0**-8, "epsilon": 2.0**-20}
F32_TENTH = float(np.float32(0.1))  # "0.1" as float32 stores it: exact in float32 and float64

ALL_DTYPES = ["float16", "bfloat16", "float32", "float64"]
WIDE = ["float32", "float64"]


@dataclass
class Sparse:
    """An IndexedSlices gradient: ``values`` has one row per index."""

    indices: list[int]
    values: list[list[float]] | list[float]
    index_dtype: str = "int32"


@dataclass(frozen=True)
class Generated:
    """A large tensor described by a seeded generator instead of literals (see ``conformance.load.vector_format.generated_values``)."""

    seed: int
    scale: float
    exact_in: tuple[str, ...]


@dataclass
class Scenario:
    """One vector before the oracle has run.

    ``steps[s]`` maps a variable name to its gradient at step s: a nested list
    (dense), a ``Sparse``, or None (passed as a None gradient); a variable
    missing from the map is not passed at that step.  A hyperparameter is a
    number, ``{"callable": [per-step values]}`` or, for the learning rate,
    ``{"schedule": [value at iterations 0, 1, ...]}``.
    """

    id: str
    description: str
    clauses: list[str]
    variables: dict[str, Any]
    steps: list[dict[str, Any]]
    hyperparameters: dict[str, Any] = field(default_factory=lambda: dict(DYADIC))
    amsgrad: bool = False
    dtypes: list[str] = field(default_factory=lambda: list(WIDE))
    flags: list[str] = field(default_factory=list)
    level: str = "core"
    construct: str = "explicit"  # or "defaults": the candidate is built with no hyperparameter argument
    oracle: str = "exact"  # or "tf2": hyperparameters rounded as TF 2.0 stores them (ADAM-TF2-*)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # needed for Generated initial values
    digest: bool = False  # store expected states as sha256 + first values (large vectors)
    variable_dtypes: dict[str, str] = field(default_factory=dict)  # each variable's own, with dtypes ["mixed"]
    clipping: dict[str, float] = field(default_factory=dict)  # one of clipnorm, global_clipnorm, clipvalue


def draw(seed: int, shape: tuple[int, ...], scale: float = 1.0, dtypes: list[str] = ALL_DTYPES) -> list:
    """Deterministic values in ``(-scale, scale)``, exact in ``dtypes``, as a nested list."""
    rng = random.Random(seed)
    n = int(np.prod(shape, dtype=np.int64))
    raw = np.array([scale * (2.0 * rng.random() - 1.0) for _ in range(n)])
    return exact_in(raw, dtypes).reshape(shape).tolist()


def grads(seed: int, shape: tuple[int, ...], n_steps: int, scale: float = 1.0, dtypes: list[str] = ALL_DTYPES, name: str = "a") -> list[dict]:
    """``n_steps`` dense gradient steps for one variable ``name``."""
    return [{name: draw(seed * 1000 + s, shape, scale, dtypes)} for s in range(n_steps)]


def _dense() -> list[Scenario]:
    return [
        Scenario(
            "dense/basic", "Five steps on a 2x3 variable with unit-scale gradients and dyadic hyperparameters.",
            ["ADAM-INIT-1", "ADAM-STEP-1", "ADAM-UPDATE-1", "ADAM-UPDATE-2", "ADAM-UPDATE-3", "ADAM-UPDATE-4", "ADAM-ITER-1"],
            {"a": draw(1, (2, 3), 2.0, WIDE)}, grads(1, (2, 3), 5, 1.0, WIDE),
        ),
        Scenario(
            "dense/scalar", "A 0-d variable: shapes without axes.",
            ["ADAM-UPDATE-4"], {"a": 1.5}, [{"a": g} for g in (0.5, -0.25, 2.0, 0.125)],
        ),
        Scenario(
            "dense/zero-gradient-from-start", "All-zero gradients from the first step: m = v = 0, the update is 0/(0 + epsilon) = 0.",
            ["ADAM-UPDATE-4"], {"a": [1.0, -2.0, 3.0]}, [{"a": [0.0, 0.0, 0.0]}] * 3, flags=["zero-gradient"],
        ),
        Scenario(
            "dense/zero-gradient-after", "Zero gradients after two non-zero steps: the variable keeps moving with the decaying m.",
            ["ADAM-UPDATE-2", "ADAM-UPDATE-4"], {"a": [1.0, -2.0, 3.0]},
            [{"a": [0.5, -1.0, 0.25]}, {"a": [0.25, 0.5, -0.125]}] + [{"a": [0.0, 0.0, 0.0]}] * 4, flags=["zero-gradient"],
        ),
        Scenario(
            "dense/long-run", "Forty steps: the bias corrections approach 1 and the trajectory accumulates.",
            ["ADAM-STEP-1", "ADAM-UPDATE-1", "ADAM-UPDATE-4", "ADAM-ITER-1"],
            {"a": draw(2, (8,), 1.0, WIDE)}, grads(2, (8,), 40, 1.0, WIDE),
        ),
        Scenario(
            "dense/non-finite-gradients", "NaN, +Inf and -Inf gradient elements at the last step: m and v of those "
            "elements become NaN or Inf, the variable NaN; the other elements are unaffected. Under a loop that "
            "scales the loss the last step is skipped: nothing changes, iterations included (ADAM-UPDATE-7).",
            ["ADAM-UPDATE-5", "ADAM-UPDATE-7"], {"a": [1.0, -2.0, 3.0, 0.5, -0.25]},
            [{"a": [0.25, 0.5, -0.125, 1.0, 2.0]}, {"a": [-0.5, 1.0, 0.25, -0.25, 0.125]},
             {"a": [0.5, math.nan, math.inf, -math.inf, -1.0]}],
            flags=["non-finite"],
        ),
        Scenario(
            "dense/mixed-magnitudes", "Gradients whose magnitudes span 1e-4 to 1e2 in one tensor.",
            ["ADAM-UPDATE-2", "ADAM-UPDATE-3", "ADAM-UPDATE-4"], {"a": [1.0] * 6},
            [{"a": exact_in(np.array([1e-4, -3e-3, 0.05, -1.0, 20.0, -100.0]) * k, WIDE).tolist()} for k in (1.0, -0.5, 2.0, 1.0, -1.0)],
        ),
    ]


def _discriminating() -> list[Scenario]:
    big_eps = dict(DYADIC, epsilon=1.0)
    tenth_eps = dict(DYADIC, epsilon=F32_TENTH)
    return [
        Scenario(
            "discriminating/epsilon-1", "epsilon = 1.0, the page's suggestion for Inception: where epsilon is added dominates the step.",
            ["ADAM-UPDATE-4"], {"a": draw(3, (6,), 1.0, WIDE)}, grads(3, (6,), 6, 1.0, WIDE), big_eps,
            flags=["epsilon-matters"],
        ),
        Scenario(
            "discriminating/epsilon-0.1", "epsilon = 0.1 (as float32 stores it), the page's other suggestion.",
            ["ADAM-UPDATE-4"], {"a": draw(4, (6,), 1.0, WIDE)}, grads(4, (6,), 6, 0.5, WIDE), tenth_eps,
            flags=["epsilon-matters"],
        ),
        Scenario(
            "discriminating/tiny-gradients", "Gradients near 1e-6, so sqrt(v) and epsilon are of one size and epsilon's placement shows.",
            ["ADAM-UPDATE-4"], {"a": draw(5, (6,), 1.0, WIDE)}, grads(5, (6,), 6, 2e-6, WIDE),
            flags=["epsilon-matters"],
        ),
        Scenario(
            "discriminating/beta1-zero", "beta_1 = 0: m is the current gradient.",
            ["ADAM-UPDATE-1", "ADAM-UPDATE-2"], {"a": draw(6, (5,), 1.0, WIDE)}, grads(6, (5,), 4, 1.0, WIDE),
            dict(DYADIC, beta_1=0.0),
        ),
        Scenario(
            "discriminating/strong-bias-correction", "beta_1 = 0.5, beta_2 = 0.75 and a large learning rate: each step's t shows in the result.",
            ["ADAM-STEP-1", "ADAM-UPDATE-1"], {"a": draw(7, (5,), 1.0, WIDE)}, grads(7, (5,), 5, 1.0, WIDE),
            {"learning_rate": 0.25, "beta_1": 0.5, "beta_2": 0.75, "epsilon": 2.0**-23},
        ),
        Scenario(
            "discriminating/swapped-betas", "beta_1 and beta_2 far apart (0.5 and 0.984375), so a port that swaps them fails.",
            ["ADAM-UPDATE-2", "ADAM-UPDATE-3"], {"a": draw(8, (5,), 1.0, WIDE)}, grads(8, (5,), 4, 1.0, WIDE),
            {"learning_rate": 2.0**-5, "beta_1": 0.5, "beta_2": 0.984375, "epsilon": 2.0**-23},
        ),
    ]


def _amsgrad() -> list[Scenario]:
    falling = [{"a": [4.0, -3.0, 2.0, 1.0]}] * 2 + [{"a": [0.125, 0.25, -0.0625, 0.5]}] * 6
    return [
        Scenario(
            "amsgrad/falling-v", "beta_2 = 0.875; two large gradients then small ones, so v falls and the maximum vhat decides the step.",
            ["ADAM-AMSGRAD-1", "ADAM-AMSGRAD-2"], {"a": [1.0, 2.0, -1.0, 0.5]}, falling,
            dict(DYADIC, beta_2=0.875), amsgrad=True, flags=["v-falls"],
        ),
        Scenario(
            "amsgrad/first-step", "At t = 1, vhat equals v (vhat starts at zero and is updated after v).",
            ["ADAM-AMSGRAD-1"], {"a": [1.0, 2.0, 3.0]}, [{"a": [0.5, -1.0, 2.0]}], amsgrad=True,
        ),
        Scenario(
            "amsgrad/random", "Random gradients with changing scale, beta_2 = 0.9375.",
            ["ADAM-AMSGRAD-1", "ADAM-AMSGRAD-2"], {"a": draw(9, (2, 4), 1.0, WIDE)},
            [{"a": (np.array(draw(9000 + s, (2, 4), 1.0, WIDE)) * (4.0 if s % 3 == 0 else 0.25)).tolist()} for s in range(9)],
            dict(DYADIC, beta_2=0.9375), amsgrad=True, flags=["v-falls"],
        ),
    ]


def _sparse() -> list[Scenario]:
    row = lambda seed: draw(seed, (3,), 1.0, WIDE)  # noqa: E731 - one row of a (6, 3) variable
    three_dups = [
        {"a": Sparse([2, 0, 2, 2, 4], [row(11), row(12), row(13), row(14), row(15)])},
        {"a": Sparse([1, 1, 3], [row(16), row(17), row(18)])},
        {"a": Sparse([5], [row(19)])},
        {"a": Sparse([4, 2, 4], [row(20), row(21), row(22)])},
    ]
    start = {"a": draw(10, (6, 3), 1.0, WIDE)}
    return [
        Scenario(
            "sparse/duplicate-pair", "Two values at one index must act as their sum: v gets (g1 + g2)^2.",
            ["ADAM-SPARSE-1"], {"a": [1.0, 2.0, 3.0]},
            [{"a": Sparse([1, 1], [0.125, 0.125])}, {"a": Sparse([1, 1, 0], [0.5, -0.25, 1.0])}], flags=["duplicate-indices"],
        ),
        Scenario(
            "sparse/duplicates-int32", "Three or more values at one row, rows without gradient, int32 indices.",
            ["ADAM-SPARSE-1", "ADAM-SPARSE-2", "ADAM-SPARSE-3"], start, three_dups, flags=["duplicate-indices", "absent-rows"],
        ),
        Scenario(
            "sparse/duplicates-int64", "The same as sparse/duplicates-int32 with int64 indices.",
            ["ADAM-SPARSE-1", "ADAM-SPARSE-2", "ADAM-SPARSE-3"], start,
            [{"a": Sparse(s["a"].indices, s["a"].values, "int64")} for s in three_dups], flags=["duplicate-indices", "absent-rows"],
        ),
        Scenario(
            "sparse/not-lazy", "A dense step makes m non-zero; later sparse steps touch one row, yet every row keeps moving and decaying.",
            ["ADAM-SPARSE-2"], {"a": draw(23, (4, 2), 1.0, WIDE)},
            [{"a": draw(24, (4, 2), 1.0, WIDE)}, {"a": Sparse([1], [row(25)[:2]])}, {"a": Sparse([3], [row(26)[:2]])}],
            flags=["absent-rows"],
        ),
        Scenario(
            "sparse/row-then-absent", "Row 0 gets a gradient at the first step only; it keeps moving afterwards.",
            ["ADAM-SPARSE-2"], {"a": [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]},
            [{"a": Sparse([0, 2], [[0.5, -0.5], [1.0, 0.25]])}] + [{"a": Sparse([2], [[0.25, 0.5]])}] * 3,
            flags=["absent-rows"],
        ),
        Scenario(
            "sparse/amsgrad-duplicates", "AMSGrad with duplicate indices and falling v.",
            ["ADAM-SPARSE-1", "ADAM-SPARSE-2", "ADAM-AMSGRAD-1"], start, three_dups,
            dict(DYADIC, beta_2=0.875), amsgrad=True, flags=["duplicate-indices", "v-falls"],
        ),
    ]


def _per_step(values: list[float]) -> dict:
    return {"callable": values}


def _callables() -> list[Scenario]:
    start, g = {"a": draw(30, (5,), 1.0, WIDE)}, grads(30, (5,), 5, 1.0, WIDE)
    lrs = [2.0**-6, 2.0**-4, 2.0**-7, 2.0**-3, 2.0**-5]
    b1s = [0.875, 0.5, 0.75, 0.625, 0.9375]
    b2s = [1.0 - 2.0**-10, 0.9375, 0.75, 0.984375, 0.875]
    return [
        Scenario("callables/learning-rate", "A zero-argument learning_rate callable whose value changes every step.",
                 ["ADAM-HYPER-1"], start, g, dict(DYADIC, learning_rate=_per_step(lrs)), flags=["callable"]),
        Scenario("callables/beta-1", "A callable beta_1 changing every step: bias correction is pow(current beta_1, t).",
                 ["ADAM-HYPER-1", "ADAM-HYPER-2"], start, g, dict(DYADIC, beta_1=_per_step(b1s)), flags=["callable"]),
        Scenario("callables/beta-2", "A callable beta_2 changing every step: bias correction is pow(current beta_2, t).",
                 ["ADAM-HYPER-1", "ADAM-HYPER-2"], start, g, dict(DYADIC, beta_2=_per_step(b2s)), flags=["callable"]),
        Scenario("callables/all-three", "learning_rate, beta_1 and beta_2 all callables changing every step, with amsgrad.",
                 ["ADAM-HYPER-1", "ADAM-HYPER-2", "ADAM-AMSGRAD-1"], start, g,
                 dict(DYADIC, learning_rate=_per_step(lrs), beta_1=_per_step(b1s), beta_2=_per_step(b2s)),
                 amsgrad=True, flags=["callable"]),
    ]


def _callable_epsilon() -> list[Scenario]:
    return [
        Scenario("callable-epsilon/changing", "A callable epsilon (the page allows it; no TensorFlow optimizer accepts it).",
                 ["ADAM-HYPER-1"], {"a": draw(31, (5,), 1.0, WIDE)}, grads(31, (5,), 5, 0.25, WIDE),
                 dict(DYADIC, epsilon=_per_step([1.0, 2.0**-23, 0.25, 2.0**-10, 0.5])), flags=["callable", "epsilon-matters"]),
    ]


def _schedules() -> list[Scenario]:
    start, g = {"a": draw(40, (4,), 1.0, WIDE)}, grads(40, (4,), 5, 1.0, WIDE)
    return [
        Scenario("schedules/learning-rate-schedule", "A LearningRateSchedule called with the 0-based iterations (values differ at every step).",
                 ["ADAM-HYPER-3"], start, g,
                 dict(DYADIC, learning_rate={"schedule": [2.0**-3, 2.0**-6, 2.0**-4, 2.0**-8, 2.0**-5]}), flags=["schedule"]),
        Scenario("schedules/decay", "The legacy decay keyword: lr / (1 + 0.5 * iterations), iterations 0-based.",
                 ["ADAM-HYPER-4"], start, g, dict(DYADIC, learning_rate=2.0**-4, decay=0.5), flags=["decay"]),
    ]


def _recipe(name: str, source: str, dtype: str, lr: float, beta_1: float, beta_2: float, epsilon: float,
            warmup: int | None, seed: int, n_steps: int = 30) -> Scenario:
    """A published training setup: linear warm-up to ``lr`` over ``warmup`` steps, then constant (``warmup`` None: the
    learning rate is ``lr`` throughout, a plain number, for ports without schedules); one variable with ordinary
    gradients and one whose gradients are a few epsilons, so that epsilon and bias correction both matter.
    Hyperparameters are stored rounded to float32, as TF stores them, and to the vector's dtype (ADAM-DTYPE-1).

    Only setups whose numbers survive that rounding are listed: in bfloat16 a beta_2 of 0.999 rounds to 1 (alpha is
    0 and nothing moves, ``tf2/bfloat16-beta2-rounds-to-one``), and in float16 an epsilon of 1e-8 rounds to 0 while
    1e-6 and 1e-7 become subnormals whose few-epsilon gradients square to 0 (v underflows), so no published setup
    here runs in float16."""
    formats = sorted({dtype, "float32"})

    def stored(x: float) -> float:
        return float(exact_in(np.array(x), formats))

    if stored(beta_2) == 1.0 or stored(epsilon) < float(finfo(dtype).tiny):
        raise ValueError(f"recipes/{name}: beta_2 or epsilon does not survive rounding to {dtype}")
    if warmup is None:
        learning_rate: Any = stored(lr)
        lr_text, clauses, flags = f"lr {lr:g} constant (no schedule)", ["ADAM-UPDATE-1", "ADAM-UPDATE-4"], []
    else:
        learning_rate = {"schedule": [stored(lr * min(1.0, (k + 1) / warmup)) for k in range(n_steps)]}
        lr_text = f"lr {lr:g} with a {warmup}-step linear warm-up"
        clauses, flags = ["ADAM-UPDATE-1", "ADAM-UPDATE-4", "ADAM-HYPER-3"], ["schedule"]
    hyper = {"learning_rate": learning_rate, "beta_1": stored(beta_1), "beta_2": stored(beta_2),
             "epsilon": stored(epsilon)}
    start = {"w": draw(seed, (3, 4), 1.0, [dtype]), "b": draw(seed + 1, (4,), 0.1, [dtype])}
    steps = [{"w": draw(seed * 1000 + s, (3, 4), 0.05, [dtype]), "b": draw(seed * 2000 + s, (4,), 4 * epsilon, [dtype])}
             for s in range(n_steps)]
    shown = {k: v for k, v in hyper.items() if k != "learning_rate" or warmup is None}
    stored_text = ", ".join(f"{k} {v}" for k, v in shown.items())
    return Scenario(f"recipes/{name}", f"{source}: {lr_text}, beta_1 {beta_1:g}, "
                    f"beta_2 {beta_2:g}, epsilon {epsilon:g}, in {dtype}; stored rounded to float32 and {dtype} as TF "
                    f"does ({stored_text}). The 'b' gradients are a few epsilons, so epsilon matters.",
                    clauses, start, steps, hyper, dtypes=[dtype], flags=flags + ["epsilon-matters"])


#: The published setups: (name, source, dtype, lr, beta_1, beta_2, epsilon, warm-up steps, seed).
RECIPES = (
    ("llm-float32", "Large language models (GPT-3, Brown et al. 2020: beta_2 0.95, epsilon 1e-8)", "float32",
     3e-4, 0.9, 0.95, 1e-8, 10, 90),
    ("llm-bfloat16", "The same large-language-model setup with bfloat16 parameters", "bfloat16",
     3e-4, 0.9, 0.95, 1e-8, 10, 91),
    ("bert-float32", "BERT pre-training (Devlin et al. 2018: lr 1e-4, beta_2 0.999, epsilon 1e-6, warm-up)",
     "float32", 1e-4, 0.9, 0.999, 1e-6, 10, 92),
    ("keras-defaults-float32", "Keras' own Adam defaults (lr 0.001, 0.9, 0.999, epsilon 1e-7)", "float32",
     1e-3, 0.9, 0.999, 1e-7, 5, 93),
)


def _recipes() -> list[Scenario]:
    # Each setup with its warm-up schedule, then at a constant learning rate (the same inputs): a port without
    # schedules runs the second.
    return ([_recipe(*r) for r in RECIPES]
            + [_recipe(f"{name}-constant", *rest[:-2], None, rest[-1]) for name, *rest in RECIPES])


def _defaults() -> list[Scenario]:
    golden = [{"a": [0.1, -0.2, 1e-3, 5.0]}] * 3
    rounded = [{"a": exact_in(np.array(s["a"]), ["float32"]).tolist()} for s in golden]
    return [
        Scenario("defaults/golden", "Adam() with no argument: var [1, 2, 3, 4], gradient [0.1, -0.2, 1e-3, 5] three times.",
                 ["ADAM-DEFAULTS-1", "ADAM-UPDATE-4"], {"a": [1.0, 2.0, 3.0, 4.0]}, rounded,
                 {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
                 dtypes=["float32"], construct="defaults"),
        Scenario("defaults/small-gradients", "Adam() with gradients near 1e-5, where the default epsilon 1e-7 shows.",
                 ["ADAM-DEFAULTS-1"], {"a": draw(50, (6,), 1.0, ["float32"])}, grads(50, (6,), 4, 1e-5, ["float32"]),
                 {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
                 dtypes=["float32"], construct="defaults", flags=["epsilon-matters"]),
    ]


def _ordered(step: dict, names: str) -> dict:
    """The gradients of ``step`` for the variables ``names``, in that order (the order of the call)."""
    return {n: step[n] for n in names}


def _multivariable() -> list[Scenario]:
    a0, b0 = draw(60, (2, 3), 1.0, WIDE), draw(61, (4,), 1.0, WIDE)
    ga, gb = grads(60, (2, 3), 4, 1.0, WIDE, "a"), grads(61, (4,), 4, 1.0, WIDE, "b")
    both = [{**x, **y} for x, y in zip(ga, gb)]
    # Three variables of one shape (a port that binds slots by position raises nothing), each with its own values.
    c0, d0, e0 = (draw(seed, (5,), 1.0, WIDE) for seed in (62, 63, 64))
    three = [{**x, **y, **z} for x, y, z in zip(*(grads(seed, (5,), 4, 1.0, WIDE, n)
                                                  for seed, n in ((62, "a"), (63, "b"), (64, "c"))))]
    return [
        Scenario("multivariable/two-shapes", "Two variables of different shapes updated by every call share t.",
                 ["ADAM-MULTI-1", "ADAM-ITER-1"], {"a": a0, "b": b0}, both),
        Scenario("multivariable/late-variable", "Variable b is passed for the first time at step 3 and gets the global t = 3.",
                 ["ADAM-MULTI-2", "ADAM-ITER-1"], {"a": a0, "b": b0}, ga[:2] + both[2:], flags=["late-variable"]),
        Scenario("multivariable/none-gradient", "Variable b has a None gradient at steps 2 and 3: it and its slots stay unchanged.",
                 ["ADAM-ITER-2", "ADAM-ITER-1"], {"a": a0, "b": b0},
                 [both[0], {**ga[1], "b": None}, {**ga[2], "b": None}, both[3]], flags=["none-gradient"]),
        Scenario("multivariable/reordered", "Three variables of one shape, listed in another order at every call.",
                 ["ADAM-MULTI-3", "ADAM-MULTI-1"], {"a": c0, "b": d0, "c": e0},
                 [_ordered(three[0], "abc"), _ordered(three[1], "cab"), _ordered(three[2], "bca"),
                  _ordered(three[3], "acb")], flags=["reordered"]),
        Scenario("multivariable/left-out", "Variable b is left out of the calls at steps 2 and 3 (absent, not None).",
                 ["ADAM-MULTI-3", "ADAM-ITER-2"], {"a": c0, "b": d0, "c": e0},
                 [_ordered(three[0], "abc"), _ordered(three[1], "ac"), _ordered(three[2], "ca"),
                  _ordered(three[3], "abc")], flags=["left-out"]),
        Scenario("multivariable/new-first", "A new variable c is passed first at step 3, before a and b.",
                 ["ADAM-MULTI-3", "ADAM-MULTI-2"], {"a": c0, "b": d0, "c": e0},
                 [_ordered(three[0], "ab"), _ordered(three[1], "ab"), _ordered(three[2], "cab"),
                  _ordered(three[3], "cab")], flags=["late-variable", "reordered"]),
        Scenario("multivariable/sparse-and-dense", "One dense and one sparse variable in the same call.",
                 ["ADAM-MULTI-1", "ADAM-SPARSE-1"], {"a": a0, "b": [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]},
                 [{**ga[s], "b": Sparse([s % 3, 2, s % 3], [[0.5, -0.25], [0.125, 1.0], [-0.5, 0.75]])} for s in range(4)],
                 flags=["duplicate-indices"]),
    ]


def _dtypes() -> list[Scenario]:
    return [
        Scenario("dtypes/all-four", "Hyperparameters and inputs exact in bfloat16, so every dtype runs the same trajectory.",
                 ["ADAM-DTYPE-1", "ADAM-UPDATE-4"], {"a": draw(70, (8,), 2.0)}, grads(70, (8,), 6, 1.0), dict(DYADIC_BF16),
                 dtypes=list(ALL_DTYPES)),
        Scenario("dtypes/all-four-amsgrad", "As dtypes/all-four, with amsgrad and falling v.",
                 ["ADAM-DTYPE-1", "ADAM-AMSGRAD-1"], {"a": draw(71, (8,), 2.0)},
                 [{"a": (np.array(draw(7100 + s, (8,), 1.0)) * (2.0 if s < 2 else 0.5)).tolist()} for s in range(6)],
                 dict(DYADIC_BF16, beta_2=0.875), amsgrad=True, dtypes=list(ALL_DTYPES), flags=["v-falls"]),
        Scenario("dtypes/half", "float16 with the float16-exact dyadic hyperparameters (beta_2 = 1 - 2^-10).",
                 ["ADAM-DTYPE-1"], {"a": draw(72, (8,), 2.0, ["float16"])}, grads(72, (8,), 6, 1.0, ["float16"]),
                 dtypes=["float16", "float32", "float64"]),
    ]


def _tf2() -> list[Scenario]:
    tf_defaults = {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}
    return [
        Scenario("tf2/float64-float32-hyperparameters", "float64 variable with lr 0.001, betas 0.9/0.999: TF 2.0 uses their float32 roundings.",
                 ["ADAM-TF2-HYPER-1"], {"a": draw(80, (6,), 1.0, ["float64"])}, grads(80, (6,), 5, 1.0, ["float64"]), tf_defaults,
                 dtypes=["float64"], level="tf2-detail", oracle="tf2"),
        Scenario("tf2/epsilon-zero", "epsilon = 0 becomes 1e-7; with a zero gradient at t = 1 a true 0 would give 0/0 = NaN.",
                 ["ADAM-TF2-EPS-1"], {"a": [1.0, 2.0]}, [{"a": [0.0, 0.5]}, {"a": [0.0, -0.25]}], dict(DYADIC, epsilon=0.0),
                 dtypes=["float32"], level="tf2-detail", oracle="tf2", flags=["zero-gradient"]),
        Scenario("tf2/bfloat16-beta2-rounds-to-one", "bfloat16 variable, beta_2 = 0.999 rounds to 1.0: alpha = 0 and the variable never moves.",
                 ["ADAM-TF2-LOWP-1", "ADAM-DTYPE-1"], {"a": draw(81, (4,), 1.0)}, grads(81, (4,), 3, 1.0), tf_defaults,
                 dtypes=["bfloat16"], level="tf2-detail", oracle="tf2"),
        Scenario("tf2/float16-v-underflows", "float16 with defaults and gradients near 1e-3: (1 - beta_2) * g^2 is below float16's "
                 "smallest subnormal, v stays 0, and TF 2.0 moves the variable by alpha * m / epsilon (1.0 -> 0.5 in one "
                 "step) where the exact trajectory moves by 0.001. The error model allows it: it is what float16 does.",
                 ["ADAM-TF2-LOWP-1", "ADAM-DTYPE-1"], {"a": [1.0, -1.0, 0.5, 2.0]},
                 [{"a": exact_in(np.array([1e-3, -1e-3, 2e-3, 5e-4]) * k, ["float16"]).tolist()} for k in (1.0, 1.0, -1.0)],
                 tf_defaults, dtypes=["float16"], level="tf2-detail", oracle="tf2", flags=["v-underflows"]),
        Scenario("tf2/float16-rounded-hyperparameters", "float16 variable with defaults: beta_2 becomes 0.9990234375 and epsilon 1.19e-7.",
                 ["ADAM-TF2-LOWP-1", "ADAM-DTYPE-1"], {"a": draw(82, (4,), 1.0, ["float16"])}, grads(82, (4,), 4, 1.0, ["float16"]),
                 tf_defaults, dtypes=["float16"], level="tf2-detail", oracle="tf2"),
    ]


def _scale() -> list[Scenario]:
    f32 = ("float32",)
    rows = random.Random(90)
    sparse_steps = [{"a": Sparse(sorted(rows.randrange(100_000) for _ in range(5000)), Generated(9100 + s, 1.0, f32))}
                    for s in range(2)]
    return [
        Scenario("scale/dense-1e6", "A 1000 x 1000 variable (10^6 elements), three steps, from seeded generators.",
                 ["ADAM-UPDATE-4"], {"a": Generated(9000, 2.0, WIDE)}, [{"a": Generated(9001 + s, 1.0, WIDE)} for s in range(3)],
                 shapes={"a": (1000, 1000)}, digest=True, flags=["large"]),
        Scenario("scale/dense-1e7", "A 10^7-element variable, two steps, float32.",
                 ["ADAM-UPDATE-4"], {"a": Generated(9010, 2.0, f32)}, [{"a": Generated(9011 + s, 1.0, f32)} for s in range(2)],
                 dtypes=["float32"], shapes={"a": (10_000_000,)}, digest=True, flags=["large"]),
        Scenario("scale/sparse-1e6", "A 100000 x 10 variable with 5000 sorted, repeating row indices per step.",
                 ["ADAM-SPARSE-1", "ADAM-SPARSE-2"], {"a": Generated(9020, 2.0, f32)}, sparse_steps,
                 dtypes=["float32"], shapes={"a": (100_000, 10)}, digest=True, flags=["large", "duplicate-indices"]),
        # Past what --scale runs: only --scale=1e8 (about 6 GiB for the kit, docs/performance.md).
        Scenario("scale/dense-1e8", "A 10^8-element variable, two steps, float32; run with --scale=1e8.",
                 ["ADAM-UPDATE-4"], {"a": Generated(9030, 2.0, f32)}, [{"a": Generated(9031 + s, 1.0, f32)} for s in range(2)],
                 dtypes=["float32"], shapes={"a": (100_000_000,)}, digest=True, flags=["large"]),
    ]


#: Sizes around vector widths (4, 8, 16 lanes) and loop unrolling; then around multi-tensor chunks of 65536 elements.
WIDTHS = (1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 33, 63, 65, 127, 129, 255, 257, 1023, 1025)
CHUNKS = (65535, 65536, 65537, 131073)


def _generated(seed: int, shapes: dict[str, tuple[int, ...]], n_steps: int, dtypes: list[str]) -> dict[str, Any]:
    """Scenario fields for variables of ``shapes`` whose values and gradients all come from seeded generators."""
    exact = tuple(dtypes)
    names = list(shapes)
    return {"variables": {n: Generated(seed + i, 2.0, exact) for i, n in enumerate(names)},
            "steps": [{n: Generated(seed + 1000 * (s + 1) + i, 1.0, exact) for i, n in enumerate(names)}
                      for s in range(n_steps)],
            "shapes": dict(shapes), "digest": True}


#: The variables of the mixed-dtype vector: (dtype, shape), a float16 one first.
MIXED_SHAPES = {"h": ("float16", (33,)), "s": ("float32", (2, 9)), "d": ("float64", (17,)), "h2": ("float16", (8,)),
                "s2": ("float32", (1025,))}


def _mixed(seed: int, variables: dict[str, tuple[str, tuple[int, ...]]], n_steps: int) -> dict[str, Any]:
    """Scenario fields for variables of their own dtypes, from seeded generators exact in each one's dtype."""
    fields = _generated(seed, {n: shape for n, (_, shape) in variables.items()}, n_steps, [])
    own = {n: dtype for n, (dtype, _) in variables.items()}
    fields["variables"] = {n: Generated(g.seed, g.scale, (own[n],)) for n, g in fields["variables"].items()}
    fields["steps"] = [{n: Generated(g.seed, g.scale, (own[n],)) for n, g in step.items()} for step in fields["steps"]]
    return {**fields, "variable_dtypes": own}


def _kernels() -> list[Scenario]:
    f32 = ["float32"]
    # 300 variables in one call: multi-tensor kernels launch about 100 tensors or 65536 elements at a time.
    many = {f"t{i:03d}": ((8193,) if i % 25 == 24 else ((1, 3, 8, 17, 64, 65, 100, 257, 1000)[i % 9],)) for i in range(300)}
    return [
        Scenario("kernels/widths", "One call with a variable of each size around vector widths, 1 to 1025 elements.",
                 ["ADAM-SHAPE-1", "ADAM-UPDATE-4"], **_generated(12000, {f"n{k}": (k,) for k in WIDTHS}, 3, WIDE)),
        Scenario("kernels/chunks", "One call with variables of 65535, 65536, 65537 and 131073 elements, float32.",
                 ["ADAM-SHAPE-1", "ADAM-UPDATE-4"], **_generated(13000, {f"n{k}": (k,) for k in CHUNKS}, 2, f32),
                 dtypes=f32),
        Scenario("kernels/many-tensors", "One call with 300 variables of mixed sizes (about 150,000 elements), float32.",
                 ["ADAM-SHAPE-1", "ADAM-MULTI-1"], **_generated(14000, many, 2, f32), dtypes=f32),
        Scenario("kernels/empty", "Empty variables, shapes (0,) and (3, 0), passed before a 2x3 variable in every call.",
                 ["ADAM-SHAPE-1", "ADAM-MULTI-1"],
                 **_generated(15000, {"empty": (0,), "empty_3x0": (3, 0), "after": (2, 3)}, 3, WIDE)),
        Scenario("kernels/mixed-dtypes", "One call with float16, float32 and float64 variables (where the framework "
                 "allows it), each updated in its own dtype; a float16 variable first.",
                 ["ADAM-DTYPE-2", "ADAM-DTYPE-1", "ADAM-MULTI-1"], **_mixed(17000, MIXED_SHAPES, 3), dtypes=["mixed"]),
        Scenario("kernels/strided", "A transposed 4x5 variable and an every-other-element 7-vector, with gradients "
                 "laid out the same way (where the framework has strided tensors).",
                 ["ADAM-SHAPE-1", "ADAM-UPDATE-4"], **_generated(16000, {"matrix": (4, 5), "vector": (7,)}, 3, WIDE),
                 flags=["non-contiguous"]),
    ] + _kernels_half(many)


def _kernels_half(many: dict[str, tuple[int, ...]]) -> list[Scenario]:
    """The widths, chunks, many-tensor and strided shapes again in float16 and bfloat16, where a kernel's half-precision
    load and store paths (and float32 state, if it keeps one) are separate code.  Inputs are multiples of 2^-7 in
    [-1, 1) (variables of 2^-6 in [-2, 2)), exact in both dtypes; the hyperparameters are DYADIC_BF16's, exact in
    both, with 1 - beta_2 = 2^-8, so that v at the first step, g^2 / 2^8, is at least 2^-22 for a non-zero gradient:
    it never underflows to 0 in float16 (whose smallest subnormal is 2^-24), and epsilon (2^-20) stays below sqrt(v)."""
    half = ["float16", "bfloat16"]
    why = " In float16 and bfloat16 (the float32 and float64 vector is the one without -half)."
    return [
        Scenario("kernels/widths-half", "One call with a variable of each size around vector widths, 1 to 1025 elements."
                 + why, ["ADAM-SHAPE-1", "ADAM-UPDATE-4", "ADAM-DTYPE-1"],
                 **_generated(20000, {f"n{k}": (k,) for k in WIDTHS}, 3, half), hyperparameters=dict(DYADIC_BF16),
                 dtypes=half),
        Scenario("kernels/chunks-half", "One call with variables of 65535, 65536, 65537 and 131073 elements." + why,
                 ["ADAM-SHAPE-1", "ADAM-UPDATE-4", "ADAM-DTYPE-1"],
                 **_generated(24000, {f"n{k}": (k,) for k in CHUNKS}, 2, half), hyperparameters=dict(DYADIC_BF16),
                 dtypes=half),
        Scenario("kernels/many-tensors-half", "One call with 300 variables of mixed sizes (about 150,000 elements)." + why,
                 ["ADAM-SHAPE-1", "ADAM-MULTI-1", "ADAM-DTYPE-1"], **_generated(28000, many, 2, half),
                 hyperparameters=dict(DYADIC_BF16), dtypes=half),
        Scenario("kernels/strided-half", "A transposed 4x5 variable and an every-other-element 7-vector, with gradients "
                 "laid out the same way (where the framework has strided tensors)." + why,
                 ["ADAM-SHAPE-1", "ADAM-UPDATE-4", "ADAM-DTYPE-1"],
                 **_generated(32000, {"matrix": (4, 5), "vector": (7,)}, 3, half), hyperparameters=dict(DYADIC_BF16),
                 dtypes=half, flags=["non-contiguous"]),
    ]


#: What clipping vectors cite: the clipping itself, and that under a strategy it applies to the aggregated gradient.
CLIPPING_CLAUSES = ["ADAM-CLIP-APPLY-1", "ADAM-TF2-DIST-1"]


def _clipping() -> list[Scenario]:
    # Gradients chosen so that every clipped value is exact in float32 (spec E adds no term for a rounded norm, and
    # the loader refuses a vector where it would round): norms of 5, 10 and 2.5 (Pythagorean triples) against
    # clipnorm 2.5, global norms of 8 and 4 (powers of two) against global_clipnorm 2; one tensor in each vector is
    # inside the ball at some step, so it is left unchanged there.
    return [
        Scenario(
            "clipping/clipnorm", "clipnorm 2.5 applied by apply_gradients to each tensor on its own: a by norm 5 "
            "(halved), 10 (quartered), then inside the ball; b inside, on the ball, then halved.",
            CLIPPING_CLAUSES, {"a": [1.0, -2.0], "b": [[0.5, 1.5], [-1.0, 2.0]]},
            [{"a": [3.0, -4.0], "b": [[0.5, -1.0], [1.0, 0.5]]},
             {"a": [-6.0, 8.0], "b": [[1.5, 2.0], [0.0, 0.0]]},
             {"a": [0.75, 1.0], "b": [[0.0, 3.0], [4.0, 0.0]]}],
            level="later", clipping={"clipnorm": 2.5},
        ),
        Scenario(
            "clipping/global-clipnorm", "global_clipnorm 2 applied by apply_gradients to the norm of all tensors "
            "together: 8 (every tensor quartered), 4 (halved), then inside the ball (unchanged).",
            CLIPPING_CLAUSES, {"a": [1.0, -2.0, 0.5], "b": [0.25, -0.75]},
            [{"a": [6.0, -2.0, 2.0], "b": [4.0, 2.0]},
             {"a": [2.0, 2.0, -2.0], "b": [-2.0, 0.0]},
             {"a": [0.5, -1.0, 0.5], "b": [1.0, 0.5]}],
            level="later", clipping={"global_clipnorm": 2.0},
        ),
        Scenario(
            "clipping/clipvalue", "clipvalue 0.5 applied by apply_gradients element by element: some elements above "
            "it, some below -0.5, the rest unchanged.",
            CLIPPING_CLAUSES, {"a": draw(301, (2, 3), 2.0, WIDE)}, grads(301, (2, 3), 3, 1.0, WIDE),
            level="later", clipping={"clipvalue": 0.5},
        ),
    ]


FAMILIES: dict[str, Any] = {
    "dense": _dense,
    "discriminating": _discriminating,
    "amsgrad": _amsgrad,
    "sparse": _sparse,
    "callables": _callables,
    "callable-epsilon": _callable_epsilon,
    "schedules": _schedules,
    "defaults": _defaults,
    "multivariable": _multivariable,
    "dtypes": _dtypes,
    "tf2": _tf2,
    "recipes": _recipes,
    "kernels": _kernels,
    "scale": _scale,
    "clipping": _clipping,
}

FAMILY_DESCRIPTIONS = {
    "dense": "The dense update rule (ADAM-UPDATE-*) on ordinary inputs.",
    "discriminating": "Inputs chosen so that known wrong variants (epsilon placement, step index, beta handling) fail.",
    "amsgrad": "AMSGrad: the running maximum of the raw v (ADAM-AMSGRAD-*).",
    "sparse": "IndexedSlices gradients: duplicates summed, dense-equivalent update (ADAM-SPARSE-*).",
    "callables": "Zero-argument callable learning_rate, beta_1 and beta_2 (ADAM-HYPER-1/2).",
    "callable-epsilon": "A callable epsilon, kept apart since no TensorFlow optimizer accepts one.",
    "schedules": "LearningRateSchedule and the legacy decay keyword (ADAM-HYPER-3/4).",
    "defaults": "The constructor defaults (ADAM-DEFAULTS-1), checked in float32.",
    "multivariable": "Several variables per call, late variables, None gradients (ADAM-MULTI-*, ADAM-ITER-*).",
    "dtypes": "float16, bfloat16, float32 and float64 variables on one trajectory (ADAM-DTYPE-1).",
    "tf2": "TF 2.0 details: float32-stored hyperparameters, epsilon 0, low-precision rounding (ADAM-TF2-*).",
    "recipes": "Adam as training recipes use it: published hyperparameters, each with a warm-up schedule and at a "
               "constant learning rate, float32 and bfloat16.",
    "kernels": "Kernel shapes: sizes around vector widths and chunk boundaries, 300 variables in one call, empty and "
               "non-contiguous variables (ADAM-SHAPE-1), in float32 and float64 and again in float16 and bfloat16, and "
               "float16, float32 and float64 variables in one call (ADAM-DTYPE-2).",
    "clipping": "clipnorm, global_clipnorm and clipvalue applied by apply_gradients, as TF 2.2+ and Keras 3 do, to the "
                "aggregated gradient (ADAM-CLIP-APPLY-1, ADAM-TF2-DIST-1); TF 2.0 clips only in minimize.",
    "scale": "Large variables from seeded generators, expectations stored as sha256 digests; run with --scale.",
}

NOTES = {
    "zero-gradient": "Some gradients are exactly zero.",
    "epsilon-matters": "epsilon is comparable to sqrt(v): epsilon placement changes the result.",
    "v-falls": "v decreases over some steps, so AMSGrad's maximum differs from v.",
    "duplicate-indices": "An IndexedSlices has repeated indices.",
    "absent-rows": "Some rows get no gradient at some steps but have non-zero moments.",
    "callable": "Hyperparameters are zero-argument callables evaluated per step.",
    "schedule": "The learning rate is a LearningRateSchedule.",
    "decay": "The legacy decay keyword is set.",
    "late-variable": "A variable is first passed after the first step.",
    "none-gradient": "A variable is passed with a None gradient.",
    "reordered": "The calls list the variables in different orders.",
    "left-out": "A variable is left out of some calls (absent, not passed with a None gradient).",
    "non-finite": "Some gradient elements are NaN or infinite (allowed in inputs only with this flag).",
    "large": "Inputs come from seeded generators and expectations are digests; collected only with --scale.",
    "non-contiguous": "Variables and gradients are strided or transposed views, where the framework has them.",
    "v-underflows": "v underflows in the vector's dtype: the error model's bound is wide there by necessity.",
}
