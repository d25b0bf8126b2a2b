"""``adam-conformance repro``: a self-contained script that reproduces one failing item, to file upstream.

The kit runs the item once (trajectory mode: the candidate runs free), finds the first step at which a variable
leaves its bound, and writes a script that needs NumPy and the candidate's own library only: it builds the
optimizer and the variables as the adapter did (hyperparameters, dtypes, strided layout, execution mode, Keras
backend), feeds the vector's gradients up to that step, and compares the variables with the expected values and
the bound the kit computed, both embedded as exact float64 literals (``repr`` round-trips).  It prints expected
and actual values, the worst element and its error, and exits 1 when an element is out of bound, 0 when none is.

What the script cannot express is refused in one line (exit 2): adapters and modes without a template (optax, the
pipe, compiled steps), callable or scheduled hyperparameters, large vectors.  A passing item is said to pass in
one line (exit 1) and no script is written, unless ``--force`` asks for one (to confirm a fix).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: Adapter -> execution modes the script can reproduce.
SUPPORTED = {"torch": ("eager", "foreach", "fused"), "keras3": ("eager",), "tf_keras": ("eager",),
             "numpy": ("eager",)}
#: Vectors larger than this many elements make a script nobody reads; refused.
MAX_ELEMENTS = 5000


class ReproError(Exception):
    """Why no script is written, in one line (exit status 2)."""


@dataclass
class Item:
    """One item measured by the kit: what the script rebuilds and what it compares."""

    candidate: str  # module:attr
    adapter: Any
    vector: Any  # conformance.load.vector.Vector
    dtype: str
    profile: tuple[str, ...]
    steps: int  # the steps the script runs: up to the first step a variable leaves its bound (else all)
    failing: bool  # some variable is out of bound after ``steps``
    fails_elsewhere: str | None  # the kit's verdict is a failure that the variables do not show (a slot, an error)
    dtypes: dict[str, str]
    initial: dict[str, np.ndarray]
    gradients: list[dict[str, Any]]  # per step, as the adapter hands them over (densified where it densifies)
    expected: dict[str, np.ndarray]
    allowed: dict[str, np.ndarray]
    actual: dict[str, np.ndarray]  # what the kit read from the candidate after ``steps`` (for the one-line summary)
    construct: dict[str, Any]  # keyword arguments of the constructor, as the adapter passes them
    profile_option: str | None = None  # --profile as given


def _profile(adapter: Any, candidate: str, option: str | None) -> tuple[str, ...]:
    """The deviations the expected values include, as the suite chooses them: the adapter's, then ``--profile``'s
    (``none``: no other) or else the bundled expectations file's."""
    from conformance import expectations
    from reference import variants

    if option:
        declared = () if option == "none" else tuple(x.strip() for x in option.split(",") if x.strip())
    else:
        exp = expectations.for_candidate(candidate, adapter.raw, adapter.versions().get("backend"))
        declared = tuple(exp.profile) if exp else ()
    names = tuple(dict.fromkeys(tuple(adapter.profile()) + declared))
    try:
        variants.compose(*(variants.deviation(n) for n in names))
    except ValueError as exc:
        raise ReproError(f"--profile: {exc}") from None
    return names


def _find_vector(vector_id: str, extra: list[Path]) -> Any:
    """The vector ``vector_id`` among the bundled ones (its family's file first) and ``extra`` files or folders."""
    from conformance.load.files import bundled_paths, load_file

    family = vector_id.split("/")[0]
    paths = [p for p in bundled_paths() if p.stem == family] or bundled_paths()  # ids begin with their file's family
    for item in extra:
        paths = (sorted(item.glob("*.yaml")) if item.is_dir() else [item]) + paths
    for path in paths:
        vectors, errors = load_file(path)
        for vector in vectors:
            if vector.id == vector_id:
                return vector
        for error in errors:
            if getattr(error, "vector_id", None) == vector_id:
                raise ReproError(str(error))
    raise ReproError(f"--vector={vector_id}: no such vector (ids are family/name, as the report prints them)")


def _refusal(adapter: Any, vector: Any, dtype: str) -> str | None:
    """Why the script cannot reproduce this item, or None."""
    if adapter.name not in SUPPORTED:
        return f"the {adapter.name} adapter is not supported by repro (supported: {', '.join(SUPPORTED)})"
    if adapter.execution not in SUPPORTED[adapter.name]:
        return (f"--execution={adapter.execution} of the {adapter.name} adapter is not supported by repro "
                f"(supported: {', '.join(SUPPORTED[adapter.name])})")
    if dtype not in vector.dtypes:
        return f"{vector.id} runs in {', '.join(vector.dtypes)}: not in {dtype}"
    if "large" in vector.flags or vector.size > MAX_ELEMENTS:
        return f"{vector.id} has {vector.size} elements: too many for a readable script (at most {MAX_ELEMENTS})"
    for name, spec in vector.hyperparameter_specs.items():
        if isinstance(spec, dict):
            return f"{vector.id}: {name} is a callable or a schedule, which a repro script does not express"
    if adapter.name == "torch" and float(vector.hyperparameter_specs.get("decay", 0.0)):
        return f"{vector.id}: decay changes torch's learning rate every step, which a repro script does not express"
    return None


def measure(candidate: str, vector_id: str, dtype: str, *, adapter_name: str | None = None, raw: bool = False,
            execution: str | None = None, profile: str | None = None, vectors: list[Path] = ()) -> Item:
    """Run one item through the kit and gather what its script needs; ReproError (one line) if it cannot be written."""
    import pytest

    from conformance.drive import runner
    from conformance.drive.resolve import resolve
    from conformance.errors import Unsupported
    from conformance.inputs import RunSpec

    vector = _find_vector(vector_id, list(vectors))
    try:
        adapter = resolve(candidate, adapter_name, raw=raw, device="cpu", execution=execution)
    except pytest.UsageError as exc:
        raise ReproError(str(exc)) from None
    reason = _refusal(adapter, vector, dtype)
    if reason:
        raise ReproError(reason)
    names = _profile(adapter, candidate, profile)
    try:
        outcome, = runner.run(adapter, vector, dtype, modes=("trajectory",), keep=True, profile=names)
    except Unsupported as exc:
        raise ReproError(f"{vector.id} [{dtype}] is unsupported for this candidate: {exc}") from None
    if outcome.error:
        raise ReproError(f"{vector.id} [{dtype}]: the candidate raised an error, which repro does not script: "
                         f"{outcome.error}")
    initial = vector.initial()
    states = (runner.deviated_states(vector, names, initial, vector.gradients) if names
              else vector.states(initial, vector.gradients))
    spec = RunSpec.for_vector(vector, dtype, variables=initial)
    steps, failing, expected, allowed, actual = len(vector.steps), False, {}, {}, {}
    for s, (state, seen, errors) in enumerate(zip(states, outcome.observed, outcome.errors)):
        expected = {n: state[n]["variable"] for n in initial}
        actual = {n: np.asarray(seen[n]["variable"], dtype=np.float64) for n in initial}
        allowed = {n: _allowed(errors[n]["variable"], outcome.scale, expected[n], spec.dtype_of(n)) for n in initial}
        if any(_out_of_bound(actual[n], expected[n], allowed[n]).any() for n in initial):
            steps, failing = s + 1, True
            break
    verdict_fails = not outcome.passed
    elsewhere = None
    if verdict_fails and not failing:
        problems = outcome.comparison.problems + [f"{w.tensor} at step {w.step}" for w in outcome.comparison.violations]
        elsewhere = "; ".join(problems[:2]) or "; ".join(outcome.liveness) or "a slot"
    from conformance.adapters.base import densify
    from conformance.adapters.numpy_port import constructor_kwargs

    densified = adapter.name == "torch" or (adapter.name == "keras3" and adapter.versions()["backend"] != "tensorflow")
    gradients = [{n: densify(g, vector.shapes[n], np.float64) if densified and g is not None else g
                  for n, g in vector.gradients(s).items()} for s in range(steps)]
    return Item(candidate, adapter, vector, dtype, names, steps, failing, elsewhere,
                {n: spec.dtype_of(n) for n in initial}, initial, gradients, expected, allowed, actual,
                constructor_kwargs(spec), profile)


def _allowed(e: Any, scale: float, expected: np.ndarray, dtype: str) -> np.ndarray:
    """The bound of every element, ``scale * e`` (spec E-7); unbounded where it reaches past the dtype's largest
    finite value, as the kit's comparison treats it."""
    from conformance.dtypes import finfo

    bound = np.broadcast_to(scale * np.asarray(e, dtype=np.float64), expected.shape).copy()
    with np.errstate(invalid="ignore"):
        bound[np.isfinite(expected) & (bound >= float(finfo(dtype).max) - np.abs(expected))] = np.inf
    return bound


def _out_of_bound(actual: np.ndarray, expected: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """The script's own test, word for word: out of bound unless equal, both NaN, or within the allowed error."""
    with np.errstate(invalid="ignore"):
        return ~((actual == expected) | (np.isnan(actual) & np.isnan(expected))
                 | (np.abs(actual - expected) <= allowed))


# --- the script ------------------------------------------------------------------------------------------------

def _number(x: float) -> str:
    """An exact float64 literal: ``repr`` round-trips; NaN and infinities as the script's names."""
    x = float(x)
    return repr(x) if np.isfinite(x) else ("nan" if np.isnan(x) else ("inf" if x > 0 else "-inf"))


def _array(x: np.ndarray, indent: int) -> str:
    """``A([...], shape)``: float64 values, wrapped."""
    body = textwrap.fill(", ".join(_number(v) for v in np.asarray(x, dtype=np.float64).reshape(-1)), width=112,
                         initial_indent=" " * (indent + 3), subsequent_indent=" " * (indent + 3),
                         break_long_words=False, break_on_hyphens=False).lstrip(" ")
    return f"A([{body}], {tuple(int(d) for d in np.shape(x))})"


def _gradient(g: Any, indent: int) -> str:
    if g is None:
        return "None"
    if hasattr(g, "indices"):
        idx = np.asarray(g.indices)
        return (f"S({_array(np.asarray(g.values), indent)}, indices=np.array({idx.tolist()}, dtype=np.{idx.dtype}), "
                f"dense_shape={tuple(int(d) for d in g.dense_shape)})")
    return _array(g, indent)


def _data(item: Item) -> str:
    """The vector's inputs and the kit's expectations, as literals."""
    lines = ["# --- data: the vector's inputs, then the kit's expected values and bounds (exact float64 literals) ---",
             "", "DTYPES = {" + ", ".join(f'"{n}": "{d}"' for n, d in item.dtypes.items()) + "}",
             "INITIAL = {"]
    lines += [f'    "{n}": {_array(v, 4 + len(n) + 4)},' for n, v in item.initial.items()] + ["}"]
    lines.append(f"#: Step{' 1 to' if item.steps > 1 else ''} {item.steps}: variable name -> gradient (None: no "
                 "gradient; a name not listed is not in the call).")
    lines.append("GRADIENTS = [")
    for grads in item.gradients:
        lines.append("    {")
        lines += [f'        "{n}": {_gradient(g, 8 + len(n) + 4)},' for n, g in grads.items()]
        lines.append("    },")
    lines.append("]")
    for title, what in (("EXPECTED", item.expected), ("ALLOWED", item.allowed)):
        lines.append(f"{title} = {{")
        lines += [f'    "{n}": {_array(v, 4 + len(n) + 4)},' for n, v in what.items()]
        lines.append("}")
    return "\n".join(lines)


COMPARE = '''
def compare(actual):
    """Each variable against EXPECTED, element by element, within ALLOWED; 1 if any element is out of bound."""
    worst, out = None, 0
    for name, want in EXPECTED.items():
        have, bound = actual[name], ALLOWED[name]
        with np.errstate(invalid="ignore", divide="ignore"):
            err = np.abs(have - want)
            same = (have == want) | (np.isnan(have) & np.isnan(want))
            bad = ~(same | (err <= bound))
            ratio = np.nan_to_num(np.where(same, 0.0, err / bound), nan=0.0, posinf=np.inf)  # the bound's share used
            ratio[bad & ~(ratio > 1)] = np.inf  # a NaN against a number
        out += int(bad.sum())
        print(f"{name} ({DTYPES[name]}, shape {have.shape}): {int(bad.sum())} of {have.size} elements out of bound")
        for k in list(zip(*np.nonzero(bad)))[:8]:
            k = tuple(int(i) for i in k)
            print(f"  {k}: expected {float(want[k])!r}, actual {float(have[k])!r}, error {err[k]:.3g}, allowed {bound[k]:.3g}")
        if have.size:
            k = np.unravel_index(int(np.argmax(ratio)), have.shape)
            if worst is None or ratio[k] > worst[0]:
                worst = (ratio[k], name, tuple(int(i) for i in k), float(want[k]), float(have[k]), err[k], bound[k])
    if worst is not None:
        r, name, k, want, have, err, bound = worst
        print(f"worst: {name}{list(k)}: expected {want!r}, actual {have!r}, error {err:.3g} "
              f"({r:.3g} times the bound {bound:.3g})")
    print("DIFFERS from the expected values beyond the bound" if out else "within the bound: no divergence")
    return 1 if out else 0
'''.strip("\n")

HELPERS = '''
nan, inf = float("nan"), float("inf")


def A(values, shape):
    """float64 values of the given shape."""
    return np.array(values, dtype=np.float64).reshape(shape)
'''.strip("\n")

SPARSE = '''


class S:
    """A sparse gradient: values at (possibly repeated) indices of the first axis."""

    def __init__(self, values, indices, dense_shape):
        self.values, self.indices, self.dense_shape = values, indices, dense_shape
'''.rstrip("\n")

STRIDED = '''
def strided(empty, values):
    """The layout the kit measured: a matrix as the transpose of a buffer; any other shape as every other element
    of the last axis of a buffer twice as long."""
    if values.ndim == 2:
        return empty(values.shape[::-1]).T
    return empty((*values.shape[:-1], 2 * values.shape[-1]))[..., ::2]
'''.strip("\n")


def _import(candidate: str) -> tuple[str, str]:
    """``from module import Attr`` for ``module:Attr``, and the name to call."""
    module, _, attr = candidate.partition(":")
    return f"from {module} import {attr}", attr


def _kwargs(construct: dict[str, Any], extra: dict[str, str] | None = None) -> str:
    parts = [f"{k}={_number(v) if isinstance(v, float) else repr(v)}" for k, v in construct.items()]
    return ", ".join(parts + [f"{k}={v}" for k, v in (extra or {}).items()])


def _torch_body(item: Item) -> tuple[list[str], str]:
    from conformance.adapters.base import per_step_numbers

    strided = item.vector.non_contiguous
    extra = {item.adapter.execution: "True"} if item.adapter.execution in ("foreach", "fused") else {}
    session = item.adapter.start(_spec(item))
    if item.vector.constructed_with_defaults:
        args = _kwargs({}, extra)
    else:  # the numbers the adapter writes into the param group before every step
        hp = per_step_numbers(item.vector.hyperparameter_specs, 0, session.own_defaults)
        args = (f"lr={_number(hp['learning_rate'])}, betas=({_number(hp['beta_1'])}, {_number(hp['beta_2'])}), "
                f"eps={_number(hp['epsilon'])}, amsgrad={item.vector.amsgrad!r}" + (", " if extra else "")
                + _kwargs({}, extra))
    imports = ["import sys", "", "import numpy as np", "import torch", _import(item.candidate)[0]]
    make = ("    out = strided(lambda shape: torch.empty(shape, dtype=getattr(torch, dtype)), values)\n"
            "    return out.copy_(torch.from_numpy(values))" if strided else
            "    return torch.tensor(values, dtype=getattr(torch, dtype))")
    body = f'''
def tensor(values, dtype):
    """The values rounded to dtype{', in the strided layout' if strided else ''}."""
{make}


def main():
    print("torch", torch.__version__)
    params = {{name: tensor(values, DTYPES[name]).requires_grad_(True) for name, values in INITIAL.items()}}
    opt = {_import(item.candidate)[1]}(list(params.values()){', ' + args if args else ''})
    for grads in GRADIENTS:
        for name, p in params.items():
            g = grads.get(name)
            p.grad = None if g is None else tensor(g, DTYPES[name])
        opt.step()
    return compare({{name: p.detach().to(torch.float64).numpy() for name, p in params.items()}})
'''.strip("\n")
    return imports, (STRIDED + "\n\n\n" if strided else "") + body


def _spec(item: Item) -> Any:
    from conformance.inputs import RunSpec

    return RunSpec.for_vector(item.vector, item.dtype, variables=item.initial)


def _keras3_body(item: Item) -> tuple[list[str], str]:
    backend = item.adapter.versions()["backend"]
    imports = ["import os", "import sys", "", f'os.environ["KERAS_BACKEND"] = "{backend}"  # the backend measured',
               'os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")', "", "import numpy as np"]
    if backend == "jax":
        imports += ["import jax", "", 'jax.config.update("jax_enable_x64", True)  # else float64 variables are float32']
    if backend == "tensorflow":
        imports.append("import tensorflow as tf")
    imports += ["import keras", "import ml_dtypes", _import(item.candidate)[0]]
    build = ("" if item.adapter.raw else
             "        opt.build(list(variables.values()))  # every variable registered before the first step\n")
    sparse = ('''    if hasattr(g, "indices"):
        return tf.IndexedSlices(tf.constant(g.values, dtype=dtype), tf.constant(g.indices),
                                tf.constant(g.dense_shape, dtype=tf.int64))
''' if backend == "tensorflow" else "")
    body = f'''
def numpy_dtype(dtype):
    return ml_dtypes.bfloat16 if dtype == "bfloat16" else np.dtype(dtype)


def gradient(g, dtype):
    if g is None:
        return None
{sparse}    return keras.ops.convert_to_tensor(g.astype(numpy_dtype(dtype)), dtype=dtype)


def main():
    print("keras", keras.__version__, "backend", keras.backend.backend())
    with keras.device("cpu:0"):
        opt = {_import(item.candidate)[1]}({_kwargs(item.construct)})
        variables = {{name: keras.Variable(values.astype(numpy_dtype(DTYPES[name])), dtype=DTYPES[name], name=name)
                     for name, values in INITIAL.items()}}
{build}        for grads in GRADIENTS:
            opt.apply_gradients([(gradient(g, DTYPES[name]), variables[name]) for name, g in grads.items()])
    return compare({{name: np.asarray(keras.ops.convert_to_numpy(v.value)).astype(np.float64)
                    for name, v in variables.items()}})
'''.strip("\n")
    return imports, body


def _tf_keras_body(item: Item) -> tuple[list[str], str]:
    imports = ["import os", "import sys", "", 'os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")', "",
               "import numpy as np",
               "import tensorflow as tf", _import(item.candidate)[0]]
    body = f'''
def gradient(g, dtype):
    if g is None:
        return None
    if hasattr(g, "indices"):
        return tf.IndexedSlices(tf.constant(g.values, dtype=dtype), tf.constant(g.indices),
                                tf.constant(g.dense_shape, dtype=tf.int64))
    return tf.constant(g, dtype=dtype)


def main():
    print("tensorflow", tf.__version__)
    with tf.device("/CPU:0"):
        opt = {_import(item.candidate)[1]}({_kwargs(item.construct)})
        variables = {{name: tf.Variable(values, dtype=DTYPES[name], name=name) for name, values in INITIAL.items()}}
        for grads in GRADIENTS:
            opt.apply_gradients([(gradient(g, variables[name].dtype), variables[name]) for name, g in grads.items()])
    return compare({{name: v.numpy().astype(np.float64) for name, v in variables.items()}})
'''.strip("\n")
    return imports, body


def _numpy_body(item: Item) -> tuple[list[str], str]:
    strided = item.vector.non_contiguous
    imports = ["import sys", "", "import ml_dtypes", "import numpy as np", _import(item.candidate)[0]]
    make = ("    out = strided(lambda shape: np.empty(shape, dtype=numpy_dtype(dtype)), values)\n"
            "    out[...] = values\n    return out" if strided else "    return values.astype(numpy_dtype(dtype))")
    body = f'''
def numpy_dtype(dtype):
    return ml_dtypes.bfloat16 if dtype == "bfloat16" else np.dtype(dtype)


def array(values, dtype):
{make}


def gradient(g, dtype):
    if g is None or not hasattr(g, "indices"):
        return None if g is None else array(g, dtype)
    return S(g.values.astype(numpy_dtype(dtype)), g.indices, g.dense_shape)


def main():
    print("numpy", np.__version__)
    opt = {_import(item.candidate)[1]}({_kwargs(item.construct)})
    variables = {{name: array(values, DTYPES[name]) for name, values in INITIAL.items()}}
    for grads in GRADIENTS:
        opt.apply_gradients([(gradient(g, DTYPES[name]), variables[name]) for name, g in grads.items()])
    return compare({{name: np.asarray(v, dtype=np.float64) for name, v in variables.items()}})
'''.strip("\n")
    return imports, (STRIDED + "\n\n\n" if strided else "") + body


BODIES = {"torch": _torch_body, "keras3": _keras3_body, "tf_keras": _tf_keras_body, "numpy": _numpy_body}


def _versions(item: Item) -> str:
    versions = dict(item.adapter.versions())
    backend = versions.get("backend")
    if backend in ("jax", "torch"):  # the Keras 3 adapter names the backend; its version matters as much
        versions[backend] = importlib.metadata.version(backend)
    return ", ".join(f"{k} {v}" for k, v in versions.items() if k != "backend") + (
        f" (KERAS_BACKEND={backend})" if backend else "")


def _clause(item: Item) -> str:
    from conformance.clauses import SPEC_PATH

    clause = item.vector.clauses[0]
    found = re.search(rf"^### {re.escape(clause)} · [a-z0-9-]+ · (.+)$", SPEC_PATH.read_text(encoding="utf-8"), re.M)
    return f"{clause}: {found.group(1).strip() if found else '(see the spec)'}"


def _expected_text(item: Item) -> list[str]:
    from reference import variants

    out = ["Expected: Adam as TF 2.0's tf.keras.optimizers.Adam computes it (adam-conformance's spec/adam.md),",
           "computed in float64 by the kit's oracle when this script was written"]
    if item.profile:
        out[-1] += ", with this library's own conventions:"
        for name in item.profile:
            doc = (variants.deviation(name).__doc__ or name).strip().splitlines()[0]
            out.append(f"  {name}: {doc.split(': ', 1)[-1]}")
    else:
        out[-1] += "."
    return out


def script(item: Item) -> str:
    """The whole script, as text."""
    a, v = item.adapter, item.vector
    kit = importlib.metadata.version("adam-conformance") if _installed() else "source tree"
    from conformance import adapters

    backend = a.versions().get("backend")
    words = ([f"KERAS_BACKEND={backend}"] if backend else []) + ["adam-conformance repro", f"--candidate={item.candidate}"]
    words += [f"--adapter={a.name}"] if a.name != adapters.choose(item.candidate) else []
    words += [f"--execution={a.execution}"] if a.execution != "eager" else []
    words += ["--raw"] if a.raw else []
    words += [f"--vector={v.id}", f"--dtype={item.dtype}"]
    if item.profile_option:  # the deviations beyond the adapter's own, which it adds whatever the option says
        words.append("--profile=" + (",".join(n for n in item.profile if n not in a.profile()) or "none"))
    command = " ".join(words)
    header = [f"Reproduces: {item.candidate} ({a.name} adapter{', ' + a.execution if a.execution != 'eager' else ''}"
              f"{', raw' if a.raw else ''}) on {v.id} [{item.dtype}], step {item.steps} of {len(v.steps)}.",
              "",
              f"Measured with {_versions(item)}, NumPy {np.__version__}, Python {platform.python_version()}, on CPU.",
              f"Vector {v.id}: {v.record['description']}",
              f"dtypes: {', '.join(f'{n} {d}' for n, d in item.dtypes.items())}"
              + ("; variables and gradients as strided views." if v.non_contiguous else "."),
              f"Spec clause {_clause(item)}.",
              *_expected_text(item),
              "The bound of each element is the error the spec's error model allows for this dtype after these steps.",
              "Prints expected and actual values; exits 1 when an element differs beyond its bound, else 0.",
              "",
              f"Written by `{command}` (adam-conformance {kit}); needs NumPy and the library only."]
    imports, body = BODIES[a.name](item)
    sparse = any(hasattr(g, "indices") for grads in item.gradients for g in grads.values())
    header = [textwrap.fill(line, width=116, subsequent_indent="  " if line.startswith("  ") else "",
                            break_long_words=False, break_on_hyphens=False)
              for line in header]
    head = '"""' + "\n".join(header).replace("\\", "\\\\") + '\n"""\n\n' + "\n".join(imports)
    parts = [head, HELPERS + (SPARSE if sparse else ""), body, COMPARE, _data(item),
             'if __name__ == "__main__":\n    sys.exit(main())']
    return "\n\n\n".join(parts) + "\n"


def _installed() -> bool:
    try:
        importlib.metadata.version("adam-conformance")
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def summary(item: Item) -> str:
    """One line: what the kit found for the item."""
    with np.errstate(invalid="ignore", divide="ignore"):
        worst = max(((float(np.nan_to_num(np.abs(item.actual[n] - item.expected[n]) / item.allowed[n], nan=0.0).max())
                      if item.expected[n].size else 0.0), n) for n in item.expected)
    return f"{item.vector.id} [{item.dtype}] step {item.steps}: worst variable {worst[1]} at {worst[0]:.3g} times its bound"


def from_results(path: Path, wanted: str) -> dict[str, Any]:
    """The options of ``measure`` for one item of a ``--conformance-json`` file or its summary: ``wanted`` is the
    item's node id, or ``vector[dtype]`` as the report prints it.  Sets ``KERAS_BACKEND`` to the run's backend."""
    import json

    try:
        meta = json.loads(Path(path).read_text(encoding="utf-8"))
        results = meta["results"]
        adapter = meta["adapter"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ReproError(f"--from {path}: not a results file of the kit ({type(exc).__name__}: {exc})") from None
    if adapter not in SUPPORTED:
        raise ReproError(f"the {adapter} adapter is not supported by repro (supported: {', '.join(SUPPORTED)})")
    for record in results:
        nodeid = str(record.get("nodeid", ""))
        if wanted in (nodeid, nodeid.partition("::")[2]):
            break
    else:
        raise ReproError(f"--from {path}: no item {wanted!r} (give its node id, or vector[dtype] as the report prints it)")
    vector, _, dtype = nodeid.partition("::")[2].partition("[")
    if not dtype:
        raise ReproError(f"--from {path}: {wanted!r} is not a vector item (API checks and properties have no script)")
    backend = (meta.get("versions") or {}).get("backend")
    if backend:
        os.environ["KERAS_BACKEND"] = backend  # before Keras is imported: the backend the results were measured on
    declared = [n for n in meta.get("declared_profile") or [] if n]
    return {"candidate": meta["candidate"], "vector_id": vector, "dtype": dtype.rstrip("]"),
            "adapter_name": adapter, "raw": bool(meta.get("raw")), "execution": meta.get("execution"),
            "profile": ",".join(declared) or "none"}


def run(args: Any) -> int:
    """The ``repro`` command; its exit status: 0 the script is written, 1 the item passes (nothing written), 2 refused."""
    try:
        if args.source:
            options = from_results(Path(args.source[0]), args.source[1])
        elif not (args.candidate and args.vector and args.dtype):
            raise ReproError("give --candidate, --vector and --dtype, or --from RESULTS_JSON ITEM")
        else:
            options = {"candidate": args.candidate, "vector_id": args.vector, "dtype": args.dtype,
                       "adapter_name": args.adapter, "raw": args.raw, "execution": args.execution,
                       "profile": args.profile}
        item = measure(**options, vectors=args.vectors or [])
    except ReproError as exc:
        print(f"adam-conformance repro: {exc}", file=sys.stderr)
        return 2
    if item.fails_elsewhere and not args.force:
        print(f"adam-conformance repro: {item.vector.id} [{item.dtype}] fails in what the variables do not show "
              f"({item.fails_elsewhere}); repro compares the variables only", file=sys.stderr)
        return 2
    if not item.failing and not args.force:
        print(f"adam-conformance repro: {item.vector.id} [{item.dtype}] passes for {item.candidate}: nothing to "
              "reproduce (--force writes the script anyway)")
        return 1
    args.output.write_text(script(item), encoding="utf-8")
    print(f"wrote {args.output}: {summary(item)}"
          + ("" if item.failing else " (passes: the script should exit 0)"))
    return 0
