"""Load vector files: safe YAML, JSON Schema, then each vector checked (``verify``); the verified-file cache.

Every problem becomes one ``VectorError`` line naming the file, the vector and
the field.  A broken vector never hides the others: ``load_file`` returns the
good vectors and the errors side by side.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import yaml

from conformance.clauses import LEVELS
from conformance.load.limits import LIMITS, YAML_LOADER, declared, unbounded
from conformance.load.vector import Named, Vector, VectorError
from conformance.load.vector_format import SCHEMA_PATH, VECTOR_DIR
from conformance.load.verify import is_digest, verify_record


@functools.lru_cache(maxsize=1)
def _validators() -> tuple[jsonschema.Draft202012Validator, jsonschema.Draft202012Validator]:
    """The file's schema with its vectors left out, and one vector's: checking a vector's every number against the
    schema is most of a file's loading time, so it waits, with the oracle, until the vector is verified."""
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    whole = {**schema, "properties": {**schema["properties"], "vectors": {**schema["properties"]["vectors"], "items": {}}}}
    one = {"$schema": schema["$schema"], "$id": schema["$id"], "$defs": schema["$defs"], "$ref": "#/$defs/vector"}
    return jsonschema.Draft202012Validator(whole), jsonschema.Draft202012Validator(one)


def _schema_error(path: Path, record: Any, i: int) -> VectorError | None:
    """The first schema error of one vector record (``i``: its place in the file, naming it when it has no id)."""
    errors = sorted(_validators()[1].iter_errors(record), key=lambda e: list(map(str, e.absolute_path)))
    if not errors:
        return None
    vid = record.get("id") if isinstance(record, dict) and isinstance(record.get("id"), str) else f"#{i}"
    return VectorError(path, _schema_message(errors[0]), vid, _dotted(errors[0].absolute_path) or None)


def _collectable(record: Any) -> bool:
    """Whether a record has, with the schema's types, the fields that naming its items and checking its declared
    sizes read; the schema says more, checked when the vector is verified.  Cheap: no number is looked at."""
    try:
        variables, dtypes = record["variables"], record["dtypes"]
        return (isinstance(record["id"], str) and record["level"] in LEVELS
                and all(isinstance(x, list) and x for x in (record["clauses"], dtypes, record["steps"]))
                and all(isinstance(c, str) for c in record["clauses"]) and isinstance(record["flags"], list)
                and all(isinstance(f, str) for f in record["flags"]) and len(set(map(str, dtypes))) == len(dtypes)
                and set(dtypes) <= {"float16", "bfloat16", "float32", "float64", "mixed"}
                and isinstance(variables, dict) and bool(variables)
                and all(isinstance(v, dict) and isinstance(v["shape"], list)
                        and all(_count(d) for d in v["shape"]) for v in variables.values()))
    except (KeyError, TypeError):
        return False


def _count(x: Any) -> bool:
    """What the schema's ``{"type": "integer", "minimum": 0}`` admits (JSON Schema: 3.0 is an integer, True is not)."""
    return (type(x) is int or (type(x) is float and x.is_integer())) and x >= 0


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
    """What verifying a file depends on besides its bytes: the oracle, the schema, the loader (every module of ``load/``), the
    dtype tables, the driver for large vectors and its compiled oracle (which make their states slice by slice),
    NumPy and numba."""
    from reference import adam

    digest = hashlib.sha256(f"{np.__version__} {_version('numba')}".encode())
    kit = Path(__file__).parent.parent
    for source in (Path(adam.__file__), SCHEMA_PATH, *sorted((kit / "load").glob("*.py")), kit / "dtypes.py",
                   kit / "drive" / "large.py", kit / "judge" / "compiled.py", kit / "judge" / "_compiled_kernels.py"):
        digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


class Pending(Named):
    """One vector of a parsed file whose items can be named: checked against the schema and verified
    (``verify_record``) on first demand only.

    Collection needs a vector's id, family, level, clauses and dtypes, which its record gives; re-deriving its
    expectations through the oracle is what costs, so it waits until an item of the vector is going to run.
    """

    def __init__(self, file: "ParsedFile", index: int, record: dict, vector: Vector | None = None) -> None:
        self.file, self.index, self.record = file, index, record
        self._made: Vector | VectorError | None = vector

    @property
    def family(self) -> str:
        return self.file.family

    def vector(self) -> Vector:
        """The verified vector (checked once, then kept); VectorError, every time asked, if it is wrong."""
        if self._made is None:
            try:  # the schema's error, as a value, or the verified vector (verify_record raises its errors)
                self._made = _schema_error(self.file.path, self.record, self.index) or verify_record(
                    self.file.path, self.file.family, self.record)
            except VectorError as exc:
                self._made = exc
            except Exception as exc:  # noqa: BLE001 - never a traceback from inside the kit; the rest still loads
                self._made = VectorError(self.file.path, f"cannot check this vector: {type(exc).__name__}: {exc}",
                                         self.record.get("id"))
            if isinstance(self._made, Vector):
                self._made = _sourced([self._made], self.file.digest, self.file.verified)[0]
            self.file.settle()
        if isinstance(self._made, VectorError):
            raise self._made
        return self._made


@dataclass(eq=False)
class ParsedFile:
    """A vector file read and checked against its schema and the limits; its vectors are verified on demand.

    ``errors``: the whole file's error, if any (then there are no entries).  ``entries``, in file order: a vector
    whose verification waits (``Pending``), or the error that stopped a record at once (its fields cannot name
    items, its declared sizes are past the limits, its id is a duplicate).
    """

    path: Path
    family: str = ""
    digest: str = ""
    verified: set[str] | None = None
    errors: list[VectorError] = field(default_factory=list)
    entries: list[Pending | VectorError] = field(default_factory=list)

    @property
    def pending(self) -> list[Pending]:
        """The vectors that passed the parse-time checks, in file order."""
        return [e for e in self.entries if isinstance(e, Pending)]

    def made(self) -> list[Vector]:
        """The vectors verified so far (or trusted from the cache), in file order."""
        return [e._made for e in self.entries if isinstance(e, Pending) and isinstance(e._made, Vector)]

    def settle(self) -> None:
        """Once every vector of a clean file is verified, the file joins ``verified`` (not checked again later)."""
        if self.verified is None or self.errors or self.digest in self.verified:
            return
        if len(self.made()) == len(self.entries):
            self.verified.add(self.digest)


def parse_file(path: Path | str, verified: set[str] | None = None) -> ParsedFile:
    """Read one family file and check what is cheap (size, YAML, the file's schema, the fields that name items,
    declared sizes, unique ids); a vector's own schema and checks and its oracle re-derivation wait for
    ``Pending.vector``.

    ``verified`` holds the sha256 of files that passed every check before, with this kit (``fingerprint``): such
    a file is parsed but not checked again.  A file whose vectors all pass is added to it.  It also holds
    ``verified_key`` of the large vectors whose digests a run of this kit found to be the oracle's: they are not
    hashed again.
    """
    path = Path(path)
    out = ParsedFile(path, verified=verified)
    try:
        raw_bytes = path.read_bytes()
        text = raw_bytes.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        out.errors.append(VectorError(path, f"cannot read file: {exc}"))
        return out
    if len(raw_bytes) > LIMITS["MAX_FILE_BYTES"]:
        out.errors.append(VectorError(path, f"{len(raw_bytes)} bytes (at most {LIMITS['MAX_FILE_BYTES']}; "
                                            "ADAM_CONFORMANCE_MAX_FILE_BYTES)"))
        return out
    out.digest = hashlib.sha256(raw_bytes).hexdigest()
    if verified is not None and out.digest in verified:
        try:
            document = yaml.load(text, Loader=YAML_LOADER)
            out.family = document["family"]
            made = _sourced([_trusted(path, out.family, record) for record in document["vectors"]], out.digest, verified)
            out.entries = [Pending(out, i, v.record, v) for i, v in enumerate(made)]
            return out
        except Exception:  # noqa: BLE001 - anything odd: check it properly below
            out.entries = []
    refused = unbounded(text)
    if refused:
        out.errors.append(VectorError(path, refused))
        return out
    try:
        document = yaml.load(text, Loader=YAML_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        out.errors.append(VectorError(path, f"malformed YAML{where}: {problem}"))
        return out
    if not isinstance(document, dict):
        out.errors.append(VectorError(path, f"expected a mapping at the top level, got {type(document).__name__}"))
        return out

    file_errors = sorted(_validators()[0].iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))
    if file_errors:
        out.errors.append(VectorError(path, _schema_message(file_errors[0]), None,
                                      _dotted(file_errors[0].absolute_path) or None))
        return out

    out.family = document["family"]
    seen: set[str] = set()
    budget = [4 * LIMITS["MAX_ELEMENTS"]]
    for i, record in enumerate(document["vectors"]):
        # A record that items cannot be named from is checked against the schema now, for its one-line error.
        wrong = None if _collectable(record) else _schema_error(path, record, i)
        if wrong is None and not _collectable(record):  # the schema allows what _collectable does not: a kit bug
            wrong = VectorError(path, "cannot read this vector's id, level, clauses, flags, dtypes or shapes",
                                f"#{i}")
        try:
            if wrong is not None:
                raise wrong
            declared(path, record, budget)
            if record["id"] in seen:
                raise VectorError(path, "duplicate vector id in this file", record["id"], "id")
            seen.add(record["id"])
            out.entries.append(Pending(out, i, record))
        except VectorError as exc:
            # A record past the limits that the schema refuses too gets the schema's line, as the whole check gives.
            out.entries.append(exc if wrong is not None else _schema_error(path, record, i) or exc)
    return out


def load_file(path: Path | str, verified: set[str] | None = None) -> tuple[list[Vector], list[VectorError]]:
    """Load one family file and verify every vector (``parse_file``, then each ``Pending.vector``); returns
    (good vectors, one error per bad vector or for the whole file), errors in file order."""
    parsed = parse_file(path, verified)
    vectors, errors = [], list(parsed.errors)
    for entry in parsed.entries:
        if isinstance(entry, VectorError):
            errors.append(entry)
            continue
        try:
            vectors.append(entry.vector())
        except VectorError as exc:
            errors.append(exc)
    return vectors, errors


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
    if is_digest(record):
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


