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
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import yaml

from conformance.load.limits import LIMITS, YAML_LOADER, declared, unbounded
from conformance.load.vector import Vector, VectorError
from conformance.load.vector_format import SCHEMA_PATH, VECTOR_DIR
from conformance.load.verify import is_digest, verify_record


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
            declared(path, record, budget)
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


