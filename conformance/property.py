"""The property tier: Hypothesis scenarios for any candidate, and shrunk failures exported as vectors.

``scenarios`` draws what a vector can hold (shapes, dtypes, hyperparameters
from betas near 0 and 1 to epsilon from 1e-12 to 1, gradients over many
exponents, zeros, NaN and Inf, sparse rows with duplicates and gaps, callables,
several variables) restricted to what the candidate can express, with every
value exact in the drawn dtype so that the core clauses apply.  A drawn
``Scenario`` becomes a vector through the same generator and loader as the
committed ones, so the oracle, the adapters and the error model are shared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import strategies as st

from conformance.load import vector_format
from conformance.adapters.base import Batches
from conformance.judge.compare import as_state, first_mismatch
from conformance.dtypes import FORMATS, NUMPY_DTYPES, PRECISION, rounded
from conformance.features import HYPERPARAMETERS, Feature
from conformance.load.vector import Vector
from conformance.load.verify import verify_record
from vectors import generate
from vectors.scenarios import Scenario, Sparse

#: Largest gradient magnitude (as a power of two) per dtype, so that g * g cannot overflow.
MAX_EXPONENT = {"float16": 7, "bfloat16": 40, "float32": 40, "float64": 100}


def exact_hyper(x: float, dtype: str) -> float:
    """``x`` rounded to ``dtype`` and to float32: core vectors' hyperparameters are exact in both."""
    return rounded(rounded(x, dtype), "float32")


def _beta(draw: Any, dtype: str) -> float:
    """0, near 0, near 1 (1 - 2^-k as far as the dtype resolves), or anywhere between; always < 1."""
    p = min(PRECISION[dtype], 24)
    kind = draw(st.sampled_from(["zero", "small", "near-one", "any"]))
    if kind == "zero":
        return 0.0
    if kind == "small":
        return 2.0 ** -draw(st.integers(1, 20))
    if kind == "near-one":
        return 1.0 - 2.0 ** -draw(st.integers(1, p - 1))
    value = exact_hyper(draw(st.floats(0.0, 0.999)), dtype)
    return value if value < 1.0 else 1.0 - 2.0 ** -(p - 1)


def _epsilon(draw: Any, dtype: str) -> float:
    """10^e for e in [-12, 0], rounded to the dtype, and never below its smallest normal number."""
    value = exact_hyper(10.0 ** draw(st.integers(-12, 0)), dtype)
    return max(value, FORMATS[dtype].tiny)


def _gradient_values(draw: Any, n: int, dtype: str, nonfinite: bool, exponents: tuple[int, int] | None = None) -> list[float]:
    """n values: magnitudes 2^e over many exponents, exact zeros, and (rarely) NaN and +-Inf."""
    low = max(FORMATS[dtype].emin - PRECISION[dtype] + 1, -60)  # down to the subnormals, at most 2^-60
    high = MAX_EXPONENT[dtype]
    if exponents is not None:
        low, high = exponents
    out = []
    for _ in range(n):
        kind = draw(st.sampled_from(["normal"] * 6 + ["zero"] + (["nonfinite"] if nonfinite else [])))
        if kind == "zero":
            out.append(0.0)
        elif kind == "nonfinite":
            out.append(draw(st.sampled_from([math.nan, math.inf, -math.inf])))
        else:
            mantissa = draw(st.integers(1 << (PRECISION[dtype] - 2), (1 << (PRECISION[dtype] - 1)) - 1))
            exponent = draw(st.integers(low, high))
            sign = draw(st.sampled_from([1.0, -1.0]))
            out.append(rounded(sign * mantissa * 2.0 ** (exponent - PRECISION[dtype] + 2), dtype))
    return out


@dataclass(frozen=True)
class Options:
    """What to draw: the candidate's dtypes and lacking features, and the knobs a property needs."""

    dtypes: tuple[str, ...]
    lacking: frozenset[Feature]
    sparse: bool | None = None  # True: every gradient sparse; False: none; None: either
    constant_hyperparameters: bool = False  # no callables or schedules (config round trip)
    negligible_epsilon: bool = False  # epsilon far below sqrt(v) (gradient rescaling)
    nonfinite: bool = True
    none_gradients: bool = True
    gradient_exponents: tuple[int, int] | None = None  # magnitudes 2^e for e in this range (default: the dtype's)
    betas: tuple[float, ...] | None = None  # draw beta_2 from these (default: anywhere in [0, 1))


@st.composite
def scenarios(draw: Any, options: Options) -> Scenario:
    """One random scenario the candidate can express."""
    dtype = draw(st.sampled_from(options.dtypes))
    n_steps = draw(st.integers(1, 5))
    n_vars = draw(st.integers(1, 3))
    sparse_ok = options.sparse is not False and Feature.SPARSE not in options.lacking
    duplicates_ok = Feature.DUPLICATE_INDICES not in options.lacking
    late_ok = Feature.LATE_VARIABLE not in options.lacking
    shapes = {}
    for i in range(n_vars):
        rank = draw(st.integers(1 if options.sparse else 0, 3))
        shapes[f"v{i}"] = tuple(draw(st.integers(1, 4)) for _ in range(rank))
    amsgrad_ok = Feature.AMSGRAD not in options.lacking
    amsgrad = amsgrad_ok and (Feature.PLAIN_ADAM in options.lacking or draw(st.booleans()))
    # With amsgrad the spec leaves vhat of a NaN element open (ADAM-UPDATE-5), so no NaN or Inf is drawn then.
    options = replace(options, nonfinite=options.nonfinite and not amsgrad)

    hyper: dict[str, Any] = {}
    for name in HYPERPARAMETERS:
        def one() -> float:
            if name == "learning_rate":
                return exact_hyper(2.0 ** -draw(st.integers(0, 12)) * draw(st.sampled_from([1.0, 0.75, 0.625])), dtype)
            if name == "epsilon":
                # The smallest normal number (of float32 at least: core hyperparameters are exact in float32).
                tiny = max(FORMATS[dtype].tiny, FORMATS["float32"].tiny)
                return tiny if options.negligible_epsilon else _epsilon(draw, dtype)
            if name == "beta_2" and options.betas:
                return draw(st.sampled_from(options.betas))
            return _beta(draw, dtype)

        callable_ok = not options.constant_hyperparameters and Feature.callable(name) not in options.lacking
        if name == "epsilon" and options.negligible_epsilon:
            callable_ok = False
        if callable_ok and draw(st.integers(0, 4)) == 0:
            hyper[name] = {"callable": [one() for _ in range(n_steps)]}
        else:
            hyper[name] = one()

    steps = []
    for s in range(n_steps):
        step: dict[str, Any] = {}
        for name, shape in shapes.items():
            kind = draw(st.sampled_from(["dense", "sparse", "none", "absent"]))
            if options.sparse or (kind == "sparse" and sparse_ok and shape):
                if not shape:
                    kind = "dense"
                else:
                    rows = draw(st.lists(st.integers(0, shape[0] - 1), min_size=1, max_size=2 * shape[0],
                                         unique=not duplicates_ok))
                    width = int(np.prod(shape[1:], dtype=np.int64))
                    values = _gradient_values(draw, len(rows) * width, dtype, options.nonfinite, options.gradient_exponents)
                    step[name] = Sparse(rows, np.reshape(values, (len(rows),) + shape[1:]).tolist(),
                                        draw(st.sampled_from(["int32", "int64"])))
                    continue
            updated = any(before.get(name) is not None for before in steps)
            # Skipping a variable updated before keeps its moments (the "None gradient" feature); skipping one not
            # updated yet may make it a late variable.
            may_skip = options.none_gradients and (Feature.NONE_GRADIENT not in options.lacking if updated else late_ok)
            if kind in ("none", "absent") and may_skip:
                if kind == "none":
                    step[name] = None
                continue
            size = int(np.prod(shape, dtype=np.int64))
            step[name] = np.reshape(_gradient_values(draw, size, dtype, options.nonfinite, options.gradient_exponents),
                                    shape).tolist()
        if all(g is None for g in step.values()):  # ADAM-ITER-3 is an API check, not a trajectory
            first = next(iter(shapes))
            size = int(np.prod(shapes[first], dtype=np.int64))
            step[first] = np.reshape(_gradient_values(draw, size, dtype, False, options.gradient_exponents),
                                     shapes[first]).tolist()
        steps.append(step)
    # NaN and Inf only at the last step: later steps are not fixed by the spec (ADAM-UPDATE-5).
    nonfinite = any(not np.all(np.isfinite(_values(g))) for step in steps for g in step.values() if g is not None)
    if nonfinite and any(not np.all(np.isfinite(_values(g))) for step in steps[:-1] for g in step.values() if g is not None):
        steps = [{n: _finite(g) for n, g in step.items()} for step in steps[:-1]] + [steps[-1]]
    initial = {name: np.reshape([rounded(draw(st.sampled_from([1.0, -1.0])) * 2.0 ** draw(st.integers(-4, 4))
                                       * draw(st.sampled_from([1.0, 0.75, 0.625])), dtype)
                                 for _ in range(int(np.prod(shape, dtype=np.int64)))], shape).tolist()
               for name, shape in shapes.items()}
    flags = ["non-finite"] if any(not np.all(np.isfinite(_values(g))) for s in steps for g in s.values() if g is not None) else []
    return Scenario("property/drawn", "A scenario drawn by the property tier.", ["ADAM-UPDATE-4"], initial, steps,
                    hyper, amsgrad=amsgrad, dtypes=[dtype], flags=flags, shapes=shapes)


def _values(g: Any) -> np.ndarray:
    return np.asarray(g.values if isinstance(g, Sparse) else g, dtype=np.float64)


def _finite(g: Any) -> Any:
    if g is None:
        return None
    if isinstance(g, Sparse):
        return Sparse(g.indices, np.nan_to_num(np.asarray(g.values, np.float64), nan=0.0, posinf=1.0, neginf=-1.0).tolist(),
                      g.index_dtype)
    return np.nan_to_num(np.asarray(g, np.float64), nan=0.0, posinf=1.0, neginf=-1.0).tolist()


def densified(scn: Scenario) -> Scenario:
    """The same scenario with every sparse gradient replaced by its dense equivalent (duplicates summed)."""
    from reference.adam import IndexedSlices, dense_gradient

    steps = []
    for step in scn.steps:
        new = {}
        for name, g in step.items():
            if isinstance(g, Sparse):
                shape = scn.shapes[name]
                sparse = IndexedSlices(np.asarray(g.values, np.float64), np.asarray(g.indices), shape)
                # The sum of duplicates, rounded to the dtype as a candidate summing in it would hold it.
                new[name] = dense_gradient(sparse, shape).astype(NUMPY_DTYPES[scn.dtypes[0]]).astype(np.float64).tolist()
            else:
                new[name] = g
        steps.append(new)
    return replace(scn, steps=steps)


def rescaled(scn: Scenario, power: int) -> Scenario:
    """The same scenario with every gradient multiplied by 2**power (exact in binary floating point)."""
    c = 2.0**power

    def scale(g: Any) -> Any:
        if g is None:
            return None
        if isinstance(g, Sparse):
            return Sparse(g.indices, (np.asarray(g.values, np.float64) * c).tolist(), g.index_dtype)
        return (np.asarray(g, np.float64) * c).tolist()

    return replace(scn, steps=[{n: scale(g) for n, g in step.items()} for step in scn.steps])


def to_vector(scn: Scenario) -> Vector:
    """A drawn scenario as a loaded, oracle-verified vector."""
    return verify_record(Path("<property tier>"), "property", generate.build(scn))


@dataclass
class Tracker:
    """What a property's examples found: the worst share of the bound, and the last failing scenario."""

    prop: str
    worst_ratio: float = 0.0
    worst: str = ""
    failing: Scenario | None = None
    examples: int = 0
    candidate_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def seen(self, scn: Scenario, ratio: float) -> None:
        self.examples += 1
        if ratio > self.worst_ratio:
            self.worst_ratio, self.worst = ratio, describe(scn)


def describe(scn: Scenario) -> str:
    """A one-line summary of a scenario for reports."""
    hp = {k: (v if not isinstance(v, dict) else "callable") for k, v in scn.hyperparameters.items()}
    shapes = ", ".join(f"{n}{list(s)}" for n, s in scn.shapes.items())
    return f"{scn.dtypes[0]}, {len(scn.steps)} step(s), {shapes}, amsgrad={scn.amsgrad}, {hp}"


def export(scn: Scenario, directory: Path, prop: str, provenance: dict) -> Path:
    """Write a failing scenario as a one-vector family file that ``--vectors`` can run."""
    digest = vector_format.content_hash(generate.build(scn))[:12]
    scn = replace(scn, id=f"exported/{prop}-{digest}",
                  description=f"Shrunk counterexample of the property '{prop}' (property tier).")
    document = {"format": vector_format.FORMAT, "spec_version": vector_format.SPEC_VERSION, "family": "exported",
                "description": f"A counterexample found by the property tier ({prop}).", "notes": {},
                "provenance": provenance, "vectors": [generate.build(scn)]}
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"exported-{prop}-{digest}.yaml"
    path.write_text(generate.render(document), encoding="utf-8")
    return path


def observe(adapter: Any, vector: Vector, dtype: str, *, round_trip: bool = False,
            resume_at: int | None = None) -> list[dict]:
    """The candidate's state after every step of a free run.

    ``resume_at=j``: after step j the state is read, and a fresh optimizer is
    given it (after one zero-gradient call per batch of variables seen so far,
    which creates their slots in the original order) and runs the rest.
    """
    from conformance.inputs import RunSpec

    spec = RunSpec.for_vector(vector, dtype, round_trip=round_trip)
    clock = spec.clock
    session, out, batches = adapter.start(spec), [], Batches()
    for s in range(len(vector.steps)):
        clock.step = s
        if resume_at is not None and s == resume_at:
            saved = session.read()
            session = adapter.start(spec)
            for batch in batches.batches:
                session.apply({n: np.zeros(spec.variables[n].shape) for n in batch}, s)
            session.load(as_state(saved))
        grads = vector.gradients(s)
        session.apply(grads, s)
        out.append(session.read())
        batches.note(grads)
    return out


def first_difference(a: list[dict], b: list[dict], start: int = 0) -> str | None:
    """Where two runs' observations first differ bit for bit (NaN equal to NaN), or None."""
    for s, (x, y) in enumerate(zip(a, b), start=1):
        if s <= start:
            continue
        if x["iterations"] != y["iterations"]:
            return f"step {s}: iterations {x['iterations']} vs {y['iterations']}"
        for name, fields in x.items():
            if name == "iterations":
                continue
            for f, p in fields.items():
                q = y[name].get(f)
                if p is None or q is None:
                    continue
                p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
                if p.shape != q.shape:
                    return f"step {s}: {name}.{f}: shape {list(p.shape)} vs {list(q.shape)}"
                k = first_mismatch(p, q)
                if k is not None:
                    return f"step {s}: {name}.{f}[{k}]: {p.reshape(-1)[k]!r} vs {q.reshape(-1)[k]!r}"
    return None


class Environment:
    """What the property checks share: the candidate's adapter, Hypothesis settings, trackers and the export."""

    def __init__(self, kit: Any, config: Any, test_name: str) -> None:
        import hypothesis

        self.kit, self.adapter, self.test_name = kit, kit.adapter, test_name
        seed = config.getoption("hypothesis_seed", None)
        self.seed = int(seed) if isinstance(seed, str) and seed.lstrip("-").isdigit() else seed
        self.export_dir = config.getoption("--export-failures")
        lacking = self.adapter.missing()
        self.dtypes = tuple(d for d in ("float16", "bfloat16", "float32", "float64") if Feature(d) not in lacking)
        # Known divergences (the expectations file) are not drawn: the vector tier reports them already.
        self.avoided = dict(kit.expectations.avoid) if kit.expectations else {}
        self.lacking = frozenset(lacking) | frozenset(self.avoided)
        # A fixed seed means a reproducible run: no replay of examples saved by earlier runs.
        database = {} if self.seed is None else {"database": None}
        # The explain phase traces every line the test runs, the framework's included: minutes per failure.
        phases = [p for p in hypothesis.Phase if p != hypothesis.Phase.explain]
        self.settings = hypothesis.settings(
            max_examples=config.getoption("--property-examples"), deadline=None,  # frameworks are slow and uneven
            suppress_health_check=[hypothesis.HealthCheck.too_slow],  # same reason; the other checks stay on
            report_multiple_bugs=False, print_blob=True, phases=phases, **database)

    def require(self, feature: Feature) -> "Environment":
        """Skip the running check as unsupported when the candidate cannot express ``feature``."""
        import pytest

        if feature in self.lacking:
            pytest.skip(f"unsupported: {feature}: {self.adapter.missing().get(feature) or self.avoided.get(feature)}")
        return self

    def options(self, **kwargs: Any) -> Options:
        return Options(self.dtypes, self.lacking, **kwargs)

    def tracker(self) -> Tracker:
        """The running check's tracker, named after it (test_sparse_equals_dense -> sparse-equals-dense)."""
        prop = self.test_name.removeprefix("test_").replace("_", "-")
        return self.kit.trackers.setdefault(self.test_name, Tracker(prop))

    def check(self, fn: Any, tracker: Tracker) -> None:
        """Run a Hypothesis property; on failure export its shrunk example and fail with one report."""
        import pytest

        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - a property failure, a flaky candidate, a health check
            text = str(exc).strip() or type(exc).__name__
            inner = getattr(exc, "exceptions", None)  # Hypothesis's FlakyFailure groups the failures it saw
            if inner:
                text = (f"{type(exc).__name__}: the failure did not reproduce (a nondeterministic or stateful candidate); "
                        f"first failure seen:\n  {str(inner[0]).strip()}")
            if tracker.failing is not None and self.export_dir:
                provenance = {"property": tracker.prop, "candidate": self.kit.spec, "adapter": self.adapter.name,
                              "raw": self.adapter.raw,
                              "versions": {k: str(v) for k, v in self.adapter.versions().items()},
                              "hypothesis_seed": self.seed if self.seed is not None else "random"}
                path = export(tracker.failing, Path(self.export_dir), tracker.prop, provenance)
                tracker.notes.append(f"exported {path}")
                text += f"\n  shrunk counterexample written to {path} (run it with --vectors={path})"
            pytest.fail(f"property '{tracker.prop}' does not hold for {self.kit.spec}:\n  {text}", pytrace=False)
