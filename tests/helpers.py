"""Shared helpers of the kit's own tests."""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, NoReturn

import pytest

from conformance.adapters.numpy_port import NumpyPortAdapter
from conformance.clauses import DEFAULT_LEVELS
from conformance.load.vector import Vector
from conformance.load.files import bundled_paths, fingerprint, load_file
from conformance.load.verify import verify_record
from vectors.generate import build
from vectors.scenarios import Scenario, _clipping

ROOT = Path(__file__).resolve().parent.parent

#: API checks that no NumPy port can run, whatever it implements: check name -> the protocol's reason.
NO_AUTODIFF = "the NumPy-port protocol has no automatic differentiation (no minimize, get_gradients, get_updates)"
NUMPY_PROTOCOL = {
    **dict.fromkeys([*(f"test_minimize_var_list[{k}]" for k in ("list", "tuple", "callable")), "test_minimize_grad_loss",
                     "test_minimize_rejects_what_is_not_a_variable[ndarray]",
                     "test_minimize_rejects_what_is_not_a_variable[float]", "test_minimize_clips[norm]",
                     "test_minimize_clips[value]", "test_minimize_clips_norm_then_value", "test_get_gradients",
                     "test_get_gradients_clips", "test_get_updates"], NO_AUTODIFF),
    **dict.fromkeys([f"test_learning_rate_tensor_or_variable[{k}]" for k in ("tensor", "variable")],
                    "the NumPy-port protocol has no tensors: a hyperparameter is a float or a callable"),
    "test_from_config_custom_objects_schedule": "the NumPy-port protocol does not serialize schedules (get_config "
                                                "keeps the object)",
    "test_page_names_are_the_candidate": "the page's names are TensorFlow's; a candidate outside TensorFlow has none",
}


#: The ``clipping`` family's items (ADAM-CLIP-APPLY-1): unsupported for reference.Adam, TF 2.0's port, which clips only
#: in minimize (ADAM-TF2-CLIP-1), for every NumPy port that does not declare clipping in apply_gradients and every
#: pipe port; the vector ids with the NumPy ports' reason, and the items (``vector[dtype]``).
NO_CLIPPING = {scn.id: NumpyPortAdapter.no_clipping for scn in _clipping()}
CLIPPING_ITEMS = {f"{scn.id}[{d}]" for scn in _clipping() for d in scn.dtypes}


@functools.cache
def _bundled() -> tuple[tuple[Vector, ...], frozenset[str]]:
    """Every bundled vector, loaded and verified once per test process; and the sha256 of their files."""
    verified: set[str] = set()
    vectors: list[Vector] = []
    for path in bundled_paths():
        loaded, errors = load_file(path, verified)  # verified: the file's sha256 joins the set
        assert errors == [], errors
        vectors += loaded
    assert len(verified) == len(bundled_paths()) and len({v.id for v in vectors}) == len(vectors)
    return tuple(vectors), frozenset(verified)


def all_vectors() -> list[Vector]:
    """Every bundled vector (the ``scale`` family's too), loaded and verified (once per test process)."""
    return list(_bundled()[0])


def unflagged_large() -> list[Vector]:
    """The bundled vectors a run collects without ``--scale`` or ``--level``: not flagged ``large``, of a default
    level (the ``later`` level, clipping in apply_gradients, is opt-in)."""
    return [v for v in all_vectors() if "large" not in v.record["flags"] and v.level in DEFAULT_LEVELS]


def bundled_vectors() -> list[Vector]:
    """Every bundled vector outside the ``scale`` family, loaded and verified."""
    return [v for v in all_vectors() if v.family != "scale"]


def warm_cache(folder: Path) -> list[str]:
    """pytest options that give a whole-kit run ``folder`` as its cache, where the verified-vector cache
    (``conformance.plugin``, key ``adam-conformance/verified/<fingerprint>``) already lists every bundled file: the
    run parses them without re-deriving them through the oracle, as a user's second run does."""
    entry = folder / "v" / "adam-conformance" / "verified" / fingerprint()  # pytest's Cache.set layout
    if not entry.exists():
        entry.parent.mkdir(parents=True, exist_ok=True)
        entry.write_text(json.dumps(sorted(_bundled()[1])), encoding="utf-8")
    return ["-o", f"cache_dir={folder}"]


def once_per_run(factory: pytest.TempPathFactory, name: str, compute: Callable[[], Any]) -> Any:
    """``compute()`` (JSON-able), made once per test run: under pytest-xdist the first worker that asks makes it and
    the others read it, where a module-scoped fixture would be made again in every worker that runs one of its tests."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run is None:
        return compute()
    done = factory.getbasetemp().parent / f"{name}-{run}.json"  # the workers' base folders share this parent
    try:
        os.close(os.open(done.with_suffix(".lock"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        waited = 0
        while not done.exists():  # another worker is making it
            if waited > 3600:
                pytest.fail(f"{name}: the worker making it gave nothing in an hour", pytrace=False)
            time.sleep(1)
            waited += 1
        found = json.loads(done.read_text(encoding="utf-8"))
        if "error" in found:
            pytest.fail(f"{name}: the worker that made it failed: {found['error']}", pytrace=False)
        return found["value"]
    try:
        value = compute()
        text = json.dumps({"value": value})
    except BaseException as exc:
        text = json.dumps({"error": f"{type(exc).__name__}: {exc}"})
        raise
    finally:
        partial = done.with_suffix(".partial")
        partial.write_text(text, encoding="utf-8")
        partial.replace(done)  # whole or absent: a reader never sees half of it
    return value


#: What the kit's tests use beyond the core dependencies: Python modules, and programs (``cc``: gcc or cc).
FRAMEWORKS = ("tensorflow", "tf_keras", "torch", "jax", "optax", "numba", "xdist")
TOOLS = {"node": ("node",), "cc": ("gcc", "cc")}


def in_ci() -> bool:
    """Whether this is CI (``CI=true``), where everything the tests use must be installed."""
    return os.environ.get("CI", "").lower() == "true"


def missing(reason: str) -> NoReturn:
    """Skip, saying ``reason``; under CI a failure instead: a test that cannot run there is a broken CI machine."""
    if in_ci():
        pytest.fail(f"{reason}; CI=true: everything the tests use must be installed there", pytrace=False)
    pytest.skip(reason)


def need(name: str) -> str:
    """A framework (``FRAMEWORKS``, a Python module: returns its name) or a program (``TOOLS``: returns its path) that
    a test needs; when it is absent, the test skips on a developer's machine and fails under CI (``missing``).

    A module is found, not imported (TensorFlow takes seconds): a broken installation fails the test that uses it.
    """
    if name in TOOLS:
        found = next(filter(None, map(shutil.which, TOOLS[name])), None)
        return found or missing(f"{' or '.join(TOOLS[name])} is not installed: the test needs it")
    try:
        found = importlib.util.find_spec(name) is not None
    except ImportError:  # a dotted name whose parent is missing
        found = False
    return name if found else missing(f"{name} is not installed: the test needs it")


def small_scale(digest: bool) -> list[Vector]:
    """The scale family at 3 * 2^12 + 5 elements: same generators, hyperparameters and steps; expectations stored
    as digests (``digest``) or as literal values."""
    from vectors.scenarios import FAMILIES

    out = []
    for scenario in FAMILIES["scale"]():
        scenario = copy.deepcopy(scenario)
        scenario.digest = digest
        n = 3 * 4096 + 5
        scenario.shapes = {name: (n,) if len(shape) == 1 else (n // 10, 10) for name, shape in scenario.shapes.items()}
        for step in scenario.steps:
            for g in step.values():
                if hasattr(g, "indices"):
                    g.indices = [i % (n // 10) for i in g.indices]
        out.append(verify_record("<test>", "scale", build(scenario)))
    return out


def vector_from(scenario: Scenario) -> Vector:
    """A loaded, verified Vector built straight from a scenario (no file)."""
    return verify_record(Path("<memory>"), scenario.id.split("/")[0], build(scenario))


def need_kernels() -> None:
    """The tests that compare the compiled path with the readable one need numba (in CI: a failure without it)."""
    from conformance.judge import compiled

    need("numba")
    if os.environ.get("ADAM_CONFORMANCE_FUSED") == "0":
        pytest.skip("ADAM_CONFORMANCE_FUSED=0 turns the compiled path off")
    assert compiled.kernels() is not None, "numba is installed but the compiled kernels do not import"
