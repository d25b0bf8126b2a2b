"""One kit session, kept in ``config.stash[SESSION]``: the candidate, the options, the vectors, the results."""

from __future__ import annotations

import functools
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conformance.clauses import DEFAULT_LEVELS


@dataclass
class Session:
    """What the plugin's hooks and the items share during one session."""

    spec: str  # the --candidate string
    adapter: Any
    mode: str  # both, trajectory, single-step
    timeout: float
    vector_paths: list[Path]
    expectations: Any = None
    capabilities: Any = None  # conformance.drive.probe.Capabilities
    levels: tuple[str, ...] = DEFAULT_LEVELS
    device: str = ""
    environment: dict = field(default_factory=dict)
    trackers: dict = field(default_factory=dict)  # property tier: name -> conformance.property.Tracker
    cache_key: str = ""
    verified: set | None = None  # files, and large vectors' digests, verified by an earlier run of this kit (pytest's cache)
    families: set = field(default_factory=set)  # the families collected (vector families, "api", "property")
    deselected_levels: dict = field(default_factory=dict)  # level -> items not run because --level left it out
    results: list[dict] = field(default_factory=list)
    started: float = 0.0  # the kit's run: from the start of collection to the end of the last item
    collected: float = 0.0
    finished: float = 0.0
    isolation: Any = None  # conformance.isolation.Isolation under --isolate
    profile: tuple[str, ...] = ()  # deviations the candidate declares (--profile, or its expectations file's)
    diagnosis: bool = True  # --conformance-diagnosis: explain a numerical failure by the known wrong variants
    running: str | None = None  # the item being run, for the line saying where an interrupted run stopped
    _cache: dict = field(default_factory=dict)

    def load(self, path: Path) -> Any:
        """Parse a vector file once per session (``conformance.load.files.ParsedFile``): its vectors are verified
        when an item of theirs is selected to run (``conformance.collect.verify_selected``)."""
        from conformance.load.files import parse_file

        key = Path(path).resolve()
        if key not in self._cache:
            self._cache[key] = parse_file(key, self.verified)
        return self._cache[key]

    def remember_verified(self) -> None:
        """Add to the verified-vector cache the large vectors whose digests this session checked."""
        from conformance.load.files import verified_key

        for parsed in self._cache.values():
            for vector in parsed.made():
                if vector.expected is None and vector.digests_verified and vector.source in self.verified:
                    self.verified.add(verified_key(vector))

    def stale_expectations(self) -> list:
        """Entries that matched nothing, among those about a family this run collected (``api/...``, ``sparse/...``)."""
        if self.expectations is None:
            return []
        return [e for e in self.expectations.stale()
                if e.id.split("/")[0] in self.families or not any(c.isalnum() for c in e.id.split("/")[0])]

    @functools.cached_property
    def vector_set(self) -> dict:
        """The spec version and the files of this run's vector set, with a digest of their bytes."""
        from conformance.load.vector_format import SPEC_VERSION

        digest = hashlib.sha256()
        for path in self.vector_paths:
            digest.update(path.read_bytes())
        return {"spec_version": SPEC_VERSION, "vectors": [p.name for p in self.vector_paths], "sha256": digest.hexdigest()[:16]}

    def executed(self) -> int:
        """Items that ran against the candidate and were judged (pass, fail or a known divergence)."""
        return sum(1 for r in self.results if r["verdict"] in ("pass", "fail", "xfail", "stale"))

    def meta(self) -> dict:
        """The results document's header: candidate, adapter, environment, what was selected and measured, timing."""
        a = self.adapter
        total = (self.finished or time.perf_counter()) - (self.started or time.perf_counter())
        inside = sum(r.get("candidate_seconds", 0.0) for r in self.results)
        return {
            "candidate": self.spec, "adapter": a.name, "raw": a.raw, "device": self.device,
            "execution": a.execution, "execution_text": a.executions[a.execution],
            "mode": self.mode, "timeout_s": self.timeout, "isolated": self.isolation is not None, "translations": a.translations, "versions": a.versions(), "vector_set": self.vector_set,
            "environment": self.environment, "levels": list(self.levels),
            "capabilities": self.capabilities.as_dict() if self.capabilities else {"absent": {}, "not_exposed": []},
            "deselected_levels": dict(self.deselected_levels),
            "expectations": self.expectations.label if self.expectations else None,
            "stale_expectations": [e.id for e in self.stale_expectations()],
            "timing": {"total_s": round(total, 3), "candidate_s": round(inside, 3),
                       "collection_s": round(max(self.collected - self.started, 0.0), 3)},
            "checkpoint": getattr(a, "checkpoint", None),
            "declared_profile": list(self.profile),
            "profile": self.found_profile(),
            **({"world_size": a.world_size, "split": a.split} if getattr(a, "distributed", False) else {}),
            **({"rank_hosts": list(a.placement.hosts), "rank_launcher": a.placement.launcher}
               if getattr(a, "placement", None) else {}),
        }

    def found_profile(self) -> dict:
        """The run's deviation profile, from the items' diagnoses (``conformance.diagnosis.profile``)."""
        from conformance.diagnosis.profile import build

        return build(self.results)


SESSION = pytest.StashKey[Session]()
