"""Load vector files: safe YAML, JSON Schema, consistency checks, and re-derivation through the oracle.

Every problem becomes one ``VectorError`` line naming the file, the vector and
the field.  A broken vector never hides the others: ``load_file`` returns the
good vectors and the errors side by side.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator

import jsonschema
import numpy as np
import yaml

from conformance import vector_format
from conformance.compare import first_mismatch
from conformance.dtypes import MIXED, is_exact_in
from conformance.vector_format import SCHEMA_PATH, VECTOR_DIR

#: The YAML loader: libyaml's when present; a safe loader never constructs Python objects.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _limit(name: str, default: int) -> int:
    return int(os.environ.get(f"ADAM_CONFORMANCE_{name}", default))


#: What a vector file may declare, checked before anything is expanded or allocated.  Each can be raised with
#: the environment variable ``ADAM_CONFORMANCE_<NAME>`` (for example ``ADAM_CONFORMANCE_MAX_ELEMENTS``) for
#: real vectors larger than the bundled 10^7-element one.
LIMITS = {
    "MAX_FILE_BYTES": _limit("MAX_FILE_BYTES", 64 << 20),
    "MAX_DEPTH": _limit("MAX_DEPTH", 32),  # the deepest generated file nests 8 levels
    "MAX_SCALAR_CHARS": _limit("MAX_SCALAR_CHARS", 10_000),
    "MAX_ELEMENTS": _limit("MAX_ELEMENTS", 10**8),  # per tensor; a file may declare four times as many in all
    "MAX_STEPS": _limit("MAX_STEPS", 10_000),
}


def unbounded(text: str) -> str | None:
    """Why a YAML text may not be expanded, or None: anchors and aliases (the kit writes none, and each alias can
    multiply what follows), nesting past ``MAX_DEPTH``, a scalar past ``MAX_SCALAR_CHARS``.  One pass over
    libyaml's events, which expands nothing."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=YAML_LOADER):
            line = event.start_mark.line + 1
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                return f"YAML anchors and aliases are not allowed (line {line})"
            if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                depth += 1
                if depth > LIMITS["MAX_DEPTH"]:
                    return f"nested deeper than {LIMITS['MAX_DEPTH']} levels (line {line}; ADAM_CONFORMANCE_MAX_DEPTH)"
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                depth -= 1
            elif isinstance(event, yaml.ScalarEvent) and len(event.value) > LIMITS["MAX_SCALAR_CHARS"]:
                return (f"a scalar of {len(event.value)} characters at line {line} (at most "
                        f"{LIMITS['MAX_SCALAR_CHARS']}; ADAM_CONFORMANCE_MAX_SCALAR_CHARS)")
    except yaml.YAMLError:
        return None  # the loader below reports it with its position
    return None


def _declared(path: Path, record: dict, budget: list[int]) -> None:
    """Refuse a vector whose declared shapes or steps are past the limits, before anything is allocated."""
    vid = record["id"]
    if len(record["steps"]) > LIMITS["MAX_STEPS"]:
        raise VectorError(path, f"{len(record['steps'])} steps (at most {LIMITS['MAX_STEPS']}; ADAM_CONFORMANCE_MAX_STEPS)",
                          vid, "steps")
    for name, var in record["variables"].items():
        n = math.prod(int(d) for d in var["shape"])
        if n > LIMITS["MAX_ELEMENTS"]:
            raise VectorError(path, f"shape {var['shape']} declares {n:.3g} elements (at most {LIMITS['MAX_ELEMENTS']:.3g} "
                                    "per tensor; ADAM_CONFORMANCE_MAX_ELEMENTS)", vid, f"variables.{name}.shape")
        budget[0] -= n
        if budget[0] < 0:
            raise VectorError(path, f"the file declares more than {4 * LIMITS['MAX_ELEMENTS']:.3g} elements in all "
                                    "(ADAM_CONFORMANCE_MAX_ELEMENTS)", vid, f"variables.{name}.shape")


class VectorError(Exception):
    """A bad vector or vector file, as one line: ``file: vector 'id': field 'f': what is wrong``."""

    def __init__(self, path: Path | str, message: str, vector_id: str | None = None, field: str | None = None):
        self.path, self.vector_id, self.field = str(path), vector_id, field
        where = [self.path]
        if vector_id is not None:
            where.append(f"vector '{vector_id}'")
        if field:
            where.append(f"field '{field}'")
        super().__init__(": ".join(where + [message]))
        self.message = message

    def __reduce__(self) -> tuple:  # keeps its fields when sent from an --isolate child
        return VectorError, (self.path, self.message, self.vector_id, self.field)


@dataclass(frozen=True)
class Vector:
    """A loaded vector.

    A literal vector's expectations were re-derived through the oracle when it
    was loaded (``expected``).  A large vector stores generator specs and
    digests instead of literals: its inputs are generated and checked, and its
    expectations re-derived and checked against their sha256, while it runs
    (``states``), so loading stays fast.
    """

    path: Path
    family: str
    record: dict
    expected: tuple[dict, ...] | None  # per step: {"iterations": int, var: {field: float64 array or None}}
    source: str = ""  # the sha256 of the file it came from

    @property
    def digests_verified(self) -> bool:
        """Whether a large vector's stored digests were found to be the oracle's: by a run in this session, or by an
        earlier run of this kit on the same file (the verified-vector cache)."""
        return self.__dict__.get("_digests_checked", False)

    def mark_digests_verified(self) -> None:
        """The oracle is deterministic: a large vector's digests are checked once."""
        object.__setattr__(self, "_digests_checked", True)

    @property
    def id(self) -> str:
        return self.record["id"]

    @property
    def dtypes(self) -> list[str]:
        return self.record["dtypes"]

    @property
    def level(self) -> str:
        return self.record["level"]

    @property
    def clauses(self) -> list[str]:
        return self.record["clauses"]

    @property
    def steps(self) -> list[dict]:
        return self.record["steps"]

    @property
    def size(self) -> int:
        """Elements in all variables together."""
        return sum(int(np.prod(v["shape"], dtype=np.int64)) for v in self.record["variables"].values())

    def _wrap(self, fn: Any, field: str) -> Any:
        try:
            return fn()
        except ValueError as exc:
            raise VectorError(self.path, str(exc), self.id, field) from None

    def initial(self) -> dict[str, np.ndarray]:
        """Initial values of every variable (float64)."""
        return {name: self._wrap(lambda: vector_format.tensor(v["initial"], tuple(v["shape"])), f"variables.{name}.initial")
                for name, v in self.record["variables"].items()}

    def gradients(self, s: int) -> dict[str, Any]:
        """Step s's gradients: float64 array, IndexedSlices or None, by variable name."""
        return self._wrap(lambda: vector_format.gradients_at(self.record, s), f"steps[{s}].gradients")

    def hyperparameters(self, s: int) -> dict[str, float]:
        """The resolved hyperparameters of step s (as the oracle used them)."""
        return self.record["steps"][s]["hyperparameters"]

    def states(self, initial: dict | None = None, gradients: Any = None) -> Iterator[dict]:
        """The expected state after each step (float64 arrays), checked against the stored digests if large.

        A caller that holds the initial values and the gradients already passes them (``gradients(s)``).
        """
        if self.expected is not None:
            yield from self.expected
            return
        states = self._wrap(lambda: vector_format.oracle_states(self.record, initial, gradients), "steps")
        checked = self.digests_verified
        for s, stored in enumerate(self.steps):
            state = self._wrap(lambda: next(states), f"steps[{s}]")
            for name in {} if checked else stored["expected"]["variables"]:
                self.check_state_digests(s, name, {f: None if x is None else vector_format.array_digest(x)
                                                   for f, x in state[name].items()})
            yield state
        self.mark_digests_verified()

    def check_state_digests(self, s: int, name: str, have: dict[str, str | None]) -> None:
        """The sha256 of the oracle's state of one variable after step ``s`` (by field) against the stored ones;
        VectorError naming the first field that differs (a large vector's expectations are its digests)."""
        for f, digest in self.steps[s]["expected"]["variables"][name].items():
            mine = have.get(f)
            if (digest is None) != (mine is None) or (mine is not None and mine != digest["sha256"]):
                raise VectorError(self.path, "stale: the oracle's state does not match the stored sha256 "
                                  "(regenerate with `adam-conformance generate`)", self.id,
                                  f"steps[{s}].expected.variables.{name}.{f}")


@functools.lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))


def _dotted(parts: Any) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _schema_message(err: jsonschema.ValidationError) -> str:
    if err.validator in ("oneOf", "anyOf") and err.context:
        deepest = max(err.context, key=lambda e: len(e.absolute_path))
        return _schema_message(deepest)
    return err.message if len(err.message) <= 160 else err.message[:157] + "..."


def _version(distribution: str) -> str:
    """An installed distribution's version, without importing it ("" when it is not installed)."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return ""


def fingerprint() -> str:
    """What verifying a file depends on besides its bytes: the oracle, the vector format, the schema, this loader, the
    dtype tables, the driver for large vectors and its compiled oracle (which make their states slice by slice),
    NumPy and numba."""
    from reference import adam

    digest = hashlib.sha256(f"{np.__version__} {_version('numba')}".encode())
    here = Path(__file__).parent
    for source in (Path(adam.__file__), Path(vector_format.__file__), SCHEMA_PATH, Path(__file__),
                   here / "dtypes.py", here / "stream.py", here / "fused.py", here / "_fused_kernels.py"):
        digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


def load_file(path: Path | str, verified: set[str] | None = None) -> tuple[list[Vector], list[VectorError]]:
    """Load one family file; returns (good vectors, one error per bad vector or for the whole file).

    ``verified`` holds the sha256 of files that passed every check before, with this kit (``fingerprint``): such
    a file is parsed but not checked again.  A file that passes is added to it.  It also holds ``verified_key`` of
    the large vectors whose digests a run of this kit found to be the oracle's: they are not hashed again.
    """
    path = Path(path)
    try:
        raw_bytes = path.read_bytes()
        text = raw_bytes.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [], [VectorError(path, f"cannot read file: {exc}")]
    if len(raw_bytes) > LIMITS["MAX_FILE_BYTES"]:
        return [], [VectorError(path, f"{len(raw_bytes)} bytes (at most {LIMITS['MAX_FILE_BYTES']}; "
                                      "ADAM_CONFORMANCE_MAX_FILE_BYTES)")]
    file_digest = hashlib.sha256(raw_bytes).hexdigest()
    if verified is not None and file_digest in verified:
        try:
            document = yaml.load(text, Loader=YAML_LOADER)
            return _sourced([_trusted(path, document["family"], record) for record in document["vectors"]],
                            file_digest, verified), []
        except Exception:  # noqa: BLE001 - anything odd: check it properly below
            pass
    refused = unbounded(text)
    if refused:
        return [], [VectorError(path, refused)]
    try:
        document = yaml.load(text, Loader=YAML_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return [], [VectorError(path, f"malformed YAML{where}: {problem}")]
    if not isinstance(document, dict):
        return [], [VectorError(path, f"expected a mapping at the top level, got {type(document).__name__}")]

    file_errors: list[VectorError] = []
    vector_errors: dict[int, VectorError] = {}
    raw = document.get("vectors") if isinstance(document.get("vectors"), list) else []
    for err in sorted(_validator().iter_errors(document), key=lambda e: list(map(str, e.absolute_path))):
        parts = list(err.absolute_path)
        if len(parts) >= 2 and parts[0] == "vectors" and isinstance(parts[1], int):
            i = parts[1]
            vid = raw[i].get("id") if isinstance(raw[i], dict) and isinstance(raw[i].get("id"), str) else f"#{i}"
            vector_errors.setdefault(i, VectorError(path, _schema_message(err), vid, _dotted(parts[2:]) or None))
        else:
            file_errors.append(VectorError(path, _schema_message(err), None, _dotted(parts) or None))
    if file_errors:
        return [], file_errors[:1]

    vectors, errors, seen = [], list(vector_errors.values()), set()
    budget = [4 * LIMITS["MAX_ELEMENTS"]]
    for i, record in enumerate(raw):
        if i in vector_errors:
            continue
        try:
            _declared(path, record, budget)
            if record["id"] in seen:
                raise VectorError(path, "duplicate vector id in this file", record["id"], "id")
            seen.add(record["id"])
            vectors.append(verify_record(path, document["family"], record))
        except VectorError as exc:
            errors.append(exc)
        except Exception as exc:  # noqa: BLE001 - never a traceback from inside the kit; the rest still loads
            errors.append(VectorError(path, f"cannot check this vector: {type(exc).__name__}: {exc}", record.get("id")))
    if verified is not None and not errors:
        verified.add(file_digest)
    return _sourced(vectors, file_digest, verified), errors


def verified_key(vector: Vector) -> str:
    """The verified-vector cache's entry for a large vector whose digests were checked: its file's sha256 and id."""
    return f"{vector.source}:{vector.id}"


def _sourced(vectors: list[Vector], file_digest: str, verified: set[str] | None) -> list[Vector]:
    """The vectors with the sha256 of their file; a large one whose digests were verified before, marked so."""
    out = [replace(v, source=file_digest) for v in vectors]
    for vector in out:
        if vector.expected is None and verified is not None and file_digest in verified \
                and verified_key(vector) in verified:
            vector.mark_digests_verified()
    return out


def _trusted(path: Path, family: str, record: dict) -> Vector:
    """A vector from a file verified before: its stored expectations are the oracle's."""
    if _is_digest(record):
        return Vector(path=path, family=family, record=record, expected=None)
    expected = tuple(
        {"iterations": step["expected"]["iterations"],
         **{name: {f: None if x is None else np.asarray(x, dtype=np.float64) for f, x in fields.items()}
            for name, fields in step["expected"]["variables"].items()}}
        for step in record["steps"])
    return Vector(path=path, family=family, record=record, expected=expected)


def load_paths(paths: list[Path]) -> tuple[list[Vector], list[VectorError]]:
    """Load several files; vector ids must be unique across all of them."""
    vectors, errors, owner = [], [], {}
    for path in paths:
        good, bad = load_file(path)
        errors += bad
        for vec in good:
            if vec.id in owner:
                errors.append(VectorError(path, f"vector id already defined in {owner[vec.id]}", vec.id, "id"))
                continue
            owner[vec.id] = path
            vectors.append(vec)
    return vectors, errors


def bundled_paths() -> list[Path]:
    """The vector files shipped with the kit."""
    return sorted(VECTOR_DIR.glob("*.yaml"))


# --- consistency checks ---------------------------------------------------------------


def _array(path: Path, vid: str, field: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise VectorError(path, "ragged or non-numeric array", vid, field) from None
    if arr.shape != shape:
        raise VectorError(path, f"shape {list(arr.shape)} does not match the declared shape {list(shape)}", vid, field)
    return arr


def _check_finite(path: Path, vid: str, field: str, arr: np.ndarray) -> None:
    if not np.all(np.isfinite(arr)):
        where = "; allowed only in gradients of a vector flagged 'non-finite'" if ".gradients." in field else ""
        raise VectorError(path, f"non-finite value (NaN or Inf) in an input{where}", vid, field)


def _check_exact(path: Path, vid: str, field: str, arr: np.ndarray, dtypes: list[str]) -> None:
    for name in dtypes:
        if not is_exact_in(arr, name):
            raise VectorError(path, f"value not exactly representable in {name}, a dtype this vector lists", vid, field)


def _inputs(path: Path, record: dict) -> Iterator[tuple[str, np.ndarray | None, list[str]]]:
    """Check shapes and names of every input; yield (field, array, dtypes it must be exact in) for the value checks.

    A generator spec yields None: its values are produced, and checked against
    their sha256, when the vector runs.  A variable's inputs must be exact in its dtypes (its own in a mixed
    vector, ADAM-DTYPE-2), a hyperparameter in every dtype of the vector.
    """
    vid, variables, n = record["id"], record["variables"], len(record["steps"])
    listed = [d for d in record["dtypes"] if d != MIXED]
    dtypes = {name: [var["dtype"]] if "dtype" in var else listed for name, var in variables.items()}
    shapes = {}
    for name, var in variables.items():
        shapes[name] = tuple(var["shape"])
        yield _input(path, vid, f"variables.{name}.initial", var["initial"], shapes[name], dtypes[name])
    everywhere = sorted(set(listed).union(*dtypes.values()))
    for key, spec in record["hyperparameters"].items():
        field = f"hyperparameters.{key}"
        if isinstance(spec, dict):
            values = next(iter(spec.values()))
            if len(values) != n:
                raise VectorError(path, f"{len(values)} per-step values for {n} steps", vid, field)
            yield field, np.asarray(values, dtype=np.float64), everywhere
        else:
            yield field, np.asarray(spec, dtype=np.float64), everywhere
    for s, step in enumerate(record["steps"]):
        for name, g in step["gradients"].items():
            field = f"steps[{s}].gradients.{name}"
            if name not in shapes:
                raise VectorError(path, f"gradient for undeclared variable {name!r}", vid, field)
            if g is None:
                continue
            shape = shapes[name]
            if "dense" in g:
                yield _input(path, vid, field + ".dense", g["dense"], shape, dtypes[name])
                continue
            if tuple(g["dense_shape"]) != shape:
                raise VectorError(path, f"dense_shape {g['dense_shape']} is not the variable's shape {list(shape)}", vid, field)
            if not shape:
                raise VectorError(path, "a sparse gradient needs a variable with at least one axis", vid, field)
            if any(i >= shape[0] for i in g["indices"]):
                raise VectorError(path, f"index out of range for {shape[0]} rows", vid, field + ".indices")
            yield _input(path, vid, field + ".values", g["values"], (len(g["indices"]),) + shape[1:], dtypes[name])
        if set(step["expected"]["variables"]) != set(shapes):
            raise VectorError(path, "expected states must list every declared variable", vid, f"steps[{s}].expected.variables")


def _check_mixed(path: Path, record: dict) -> None:
    """ADAM-DTYPE-2: a vector lists ``mixed`` alone, and then every variable has a dtype of its own; else none has."""
    vid, mixed = record["id"], MIXED in record["dtypes"]
    if mixed and len(record["dtypes"]) != 1:
        raise VectorError(path, "'mixed' must be the only dtype a vector lists", vid, "dtypes")
    if mixed and record["oracle"] != "exact":
        raise VectorError(path, "a mixed vector needs oracle 'exact' (the tf2 oracle rounds to one dtype)", vid, "oracle")
    for name, var in record["variables"].items():
        if ("dtype" in var) != mixed:
            why = "a variable of a mixed vector needs a dtype" if mixed else "only a vector listing 'mixed' gives a " \
                                                                            "variable a dtype of its own"
            raise VectorError(path, why, vid, f"variables.{name}.dtype")


def _input(path: Path, vid: str, field: str, spec: Any, shape: tuple[int, ...],
           dtypes: list[str]) -> tuple[str, Any, list[str]]:
    if not isinstance(spec, dict):
        return field, _array(path, vid, field, spec, shape), dtypes
    missing = sorted(set(dtypes) - set(spec["exact_in"]))
    if missing:
        raise VectorError(path, f"generated values are not made exact in {missing[0]}, a dtype this vector lists", vid,
                          field + ".exact_in")
    return field, None, dtypes


def _is_digest(record: dict) -> bool:
    """Large vectors store sha256 digests of their expected states instead of literals."""
    first = next(iter(record["steps"][0]["expected"]["variables"].values()))
    return isinstance(first["variable"], dict)


def verify_record(path: Path, family: str, record: dict) -> Vector:
    """Check one schema-valid vector record and re-derive its expectations through the oracle; VectorError if it is wrong.

    ``path`` only names where the record came from in error messages (a scenario built in memory has none).
    """
    vid = record["id"]
    if record["oracle"] == "tf2" and len(record["dtypes"]) != 1:
        raise VectorError(path, "a vector with oracle 'tf2' must list exactly one dtype", vid, "dtypes")
    _check_mixed(path, record)
    exact_hypers = record["oracle"] == "exact" and record["construct"] == "explicit"
    # NaN and Inf gradients are allowed only in vectors that declare them (ADAM-UPDATE-5); never elsewhere.
    nonfinite_ok = "non-finite" in record["flags"]
    for field, arr, dtypes in _inputs(path, record):
        if arr is None:
            continue
        if not (nonfinite_ok and ".gradients." in field):
            _check_finite(path, vid, field, arr)
        if field.startswith("hyperparameters."):
            if exact_hypers:
                _check_exact(path, vid, field, arr, sorted(set(dtypes) | {"float32"}))
        else:
            _check_exact(path, vid, field, np.where(np.isfinite(arr), arr, 0.0), dtypes)
    if not all(math.isfinite(float(h)) for st in record["steps"] for h in st["hyperparameters"].values()):
        raise VectorError(path, "non-finite resolved hyperparameter", vid, "steps.hyperparameters")
    if _is_digest(record):
        _check_hash(path, record)
        return Vector(path=path, family=family, record=record, expected=None)

    try:
        oracle = list(vector_format.oracle_states(record))
    except (ValueError, KeyError, IndexError) as exc:
        raise VectorError(path, f"the oracle cannot run this vector: {exc}", vid) from None
    expected = []
    for s, (stored, derived) in enumerate(zip(record["steps"], oracle)):
        exp = stored["expected"]
        if exp["iterations"] != derived["iterations"]:
            raise VectorError(path, f"stale: iterations {exp['iterations']}, the oracle gives {derived['iterations']}",
                              vid, f"steps[{s}].expected.iterations")
        step: dict[str, Any] = {"iterations": exp["iterations"]}
        for name, want in derived.items():
            if name == "iterations":
                continue
            step[name] = {}
            for f, oracle_arr in want.items():
                field = f"steps[{s}].expected.variables.{name}.{f}"
                have = exp["variables"][name].get(f)
                if (have is None) != (oracle_arr is None):
                    raise VectorError(path, f"stale: stored {'null' if have is None else 'values'}, the oracle gives "
                                      f"{'null' if oracle_arr is None else 'values'}", vid, field)
                if have is None:
                    step[name][f] = None
                    continue
                if isinstance(have, dict):
                    raise VectorError(path, "a digest in a vector that stores literal states", vid, field)
                arr = _array(path, vid, field, have, oracle_arr.shape)
                k = first_mismatch(arr, oracle_arr)
                if k is not None:
                    raise VectorError(path, f"stale: element {k} is {float(arr.flat[k])!r}, the oracle gives "
                                      f"{float(oracle_arr.flat[k])!r} (regenerate with `adam-conformance generate`)", vid, field)
                step[name][f] = arr
        expected.append(step)
    _check_hash(path, record)  # after the oracle: a stale value is named more precisely than a hash can
    return Vector(path=path, family=family, record=record, expected=tuple(expected))


def _check_hash(path: Path, record: dict) -> None:
    if vector_format.content_hash(record) != record["sha256"]:
        raise VectorError(path, "content hash mismatch: the vector was edited by hand (regenerate it)", record["id"], "sha256")
