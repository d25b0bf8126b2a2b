"""Expectations files: the known, explained divergences of a real candidate.

A file lists the candidates it applies to and its entries::

    candidates: ["keras.optimizers:Adam"]
    raw: false
    backend: tensorflow            # optional: the Keras 3 backend(s) the file applies to
    profile: [Algorithm1Epsilon]   # optional: known deviations the candidate is judged with (as --profile): its
                                   # items are then verified against the spec with them, not excused
    divergences:
      - id: "sparse/duplicate*"     # fnmatch pattern on the vector id, "api/<check>" or "property/<check>"
        dtypes: [float32]          # optional
        executions: [fused]        # optional: the --execution modes the entry applies to (default: all)
        backends: [torch]          # optional: the Keras 3 backends the entry applies to (default: the file's)
        splits: [even]             # optional: the --split of a distributed mode the entry applies to (default: all)
        checkpoint: [model-keras]  # optional: the --checkpoint formats the entry applies to (default: every run)
        clause: ADAM-SPARSE-1
        reason: "why the candidate differs"
    property_tier:                 # optional: features the property tier does not draw, for divergences listed above
      avoid:
        duplicate indices: "ADAM-SPARSE-1, listed above"

A matching item is marked as a strict expected failure: if it fails it is
reported as an expected divergence, and if it passes the entry is stale and
the item fails.  Entries that match no collected item are reported too.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from conformance.features import Feature

BUNDLED = Path(__file__).resolve().parent / "expectations"
#: The Keras 3 backends an entry can be scoped to.
KERAS_BACKENDS = ("tensorflow", "jax", "torch", "numpy", "openvino")


class ExpectationsError(Exception):
    """A malformed expectations file (one line: file, entry, field)."""


@dataclass
class Entry:
    id: str
    clause: str
    reason: str
    dtypes: list[str] | None = None
    executions: list[str] | None = None  # the --execution modes it applies to (None: all)
    backends: list[str] | None = None  # the Keras 3 backends it applies to (None: all the file's)
    splits: list[str] | None = None  # the --split of a distributed mode it applies to (None: all)
    checkpoint: list[str] | None = None  # the --checkpoint formats it applies to (None: every run, resumed or not)
    matched: int = 0

    def matches(self, conformance_id: str, dtype: str | None) -> bool:
        return fnmatch.fnmatchcase(conformance_id, self.id) and (self.dtypes is None or dtype in self.dtypes)


@dataclass
class Expectations:
    path: Path
    candidates: list[str]
    raw: bool
    entries: list[Entry] = field(default_factory=list)
    backends: list[str] | None = None  # Keras 3: the backends the file applies to (None: any)
    avoid: dict[Feature, str] = field(default_factory=dict)  # property tier: feature -> the known divergence it would hit
    profile: list[str] = field(default_factory=list)  # known deviations it is judged with (--profile), verified

    def lookup(self, conformance_id: str, dtype: str | None) -> Entry | None:
        """The first entry that matches an item, counting the match."""
        for entry in self.entries:
            if entry.matches(conformance_id, dtype):
                entry.matched += 1
                return entry
        return None

    @property
    def label(self) -> str:
        """The file's name as reports show it: relative for a bundled file, so results do not carry local paths."""
        return f"expectations/{self.path.name}" if self.path.parent == BUNDLED else str(self.path)

    def for_run(self, execution: str, backend: str | None, split: str | None = None,
                checkpoint: str | None = None) -> "Expectations":
        """The file as it applies to a run in ``execution`` mode on ``backend`` (with ``split``, a distributed mode's;
        ``checkpoint``, the ``--checkpoint`` format): entries scoped to others left out."""
        kept = [e for e in self.entries if (e.executions is None or execution in e.executions)
                and (e.backends is None or backend in e.backends) and (e.splits is None or split in e.splits)
                and (e.checkpoint is None or checkpoint in e.checkpoint)]
        return dataclasses.replace(self, entries=kept)

    def stale(self) -> list[Entry]:
        return [e for e in self.entries if e.matched == 0]


def load(path: Path | str) -> Expectations:
    """Parse and check one expectations file."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ExpectationsError(f"{path}: cannot read expectations: {str(exc).splitlines()[0]}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("divergences", []), list):
        raise ExpectationsError(f"{path}: expected a mapping with a 'divergences' list")
    entries = []
    for i, raw in enumerate(doc.get("divergences") or []):
        for key in ("id", "clause", "reason"):
            if not isinstance(raw, dict) or not isinstance(raw.get(key), str) or not raw[key].strip():
                raise ExpectationsError(f"{path}: entry {i}: field '{key}': a non-empty string is required")
        dtypes = raw.get("dtypes")
        if dtypes is not None and not (isinstance(dtypes, list) and all(isinstance(d, str) for d in dtypes)):
            raise ExpectationsError(f"{path}: entry {i} ('{raw['id']}'): field 'dtypes': a list of dtype names is required")
        scopes = {}
        for key, what in (("executions", "execution mode names"), ("backends", "Keras 3 backend names"),
                          ("splits", "--split names"), ("checkpoint", "--checkpoint format names")):
            scopes[key] = raw.get(key)
            if scopes[key] is not None and not (isinstance(scopes[key], list) and all(isinstance(x, str) for x in scopes[key])):
                raise ExpectationsError(f"{path}: entry {i} ('{raw['id']}'): field '{key}': a list of {what} is required")
        unknown = sorted(set(scopes["backends"] or []) - set(KERAS_BACKENDS))
        if unknown:  # a misspelt backend would leave the entry out silently
            raise ExpectationsError(f"{path}: entry {i} ('{raw['id']}'): field 'backends': unknown backend "
                                    f"{unknown[0]!r} (known: {', '.join(KERAS_BACKENDS)})")
        entries.append(Entry(raw["id"], raw["clause"], raw["reason"].strip(), dtypes, **scopes))
    avoid = (doc.get("property_tier") or {}).get("avoid") or {}
    if not isinstance(avoid, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in avoid.items()):
        raise ExpectationsError(f"{path}: field 'property_tier.avoid': a mapping of feature names to reasons is required")
    try:
        features = Feature.parse(list(avoid), f"{path}: field 'property_tier.avoid'")
    except ValueError as exc:
        raise ExpectationsError(str(exc)) from None
    profile = doc.get("profile") or []
    if not (isinstance(profile, list) and all(isinstance(x, str) for x in profile)):
        raise ExpectationsError(f"{path}: field 'profile': a list of deviation names is required")
    return Expectations(path, list(doc.get("candidates") or []), bool(doc.get("raw", False)), entries,
                        [doc["backend"]] if isinstance(doc.get("backend"), str) else doc.get("backend"),
                        dict(zip(features, avoid.values())), profile)


def for_candidate(spec: str, raw: bool, backend: str | None = None) -> Expectations | None:
    """The bundled expectations file for a known candidate (raw setting, Keras backend), if any."""
    for path in sorted(BUNDLED.glob("*.yaml")):
        exp = load(path)
        if spec in exp.candidates and exp.raw == raw and (exp.backends is None or backend in exp.backends):
            return exp
    return None
