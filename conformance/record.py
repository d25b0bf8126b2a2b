"""The result record of one item: one type, built here, serialised as ``results.schema.json`` describes it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from conformance.clauses import level_of

#: Fields every record carries, even when empty (the rest are left out when they hold nothing).
REQUIRED = ("nodeid", "vector", "family", "level", "clauses", "dtype", "verdict")


@dataclass
class Result:
    """What the kit found for one item (a vector in one dtype, an API check, a property, a broken vector)."""

    vector: str  # the vector id, "api/<check>" or "property/<check>"
    family: str
    level: str | None
    clauses: list[str]
    dtype: str | None = None
    nodeid: str = ""
    verdict: str = ""  # pass, fail, xfail, stale, unsupported, error (conformance.report.VERDICTS)
    message: str | None = None
    duration_s: float | None = None
    device: str | None = None
    candidate_seconds: float | None = None
    # a vector's run
    first_failing_step: int | None = None
    max_ratio: float | str | None = None
    modes: dict[str, dict] = field(default_factory=dict)
    observed: dict[str, list[str]] | None = None  # {"checked": [...], "not_exposed": [...]}
    diagnosis: dict | None = None
    # why it did not run, or why its failure is expected
    unsupported: str | None = None
    expected_divergence: str | None = None
    # a property of the property tier
    examples: int | None = None
    worst_ratio: float | None = None
    worst_example: str | None = None
    notes: list[str] = field(default_factory=list)
    kit_error: bool = False  # the vector is broken, not the candidate: a failure is an error

    @classmethod
    def for_vector(cls, vector: Any, dtype: str) -> "Result":
        return cls(vector.id, vector.family, vector.level, list(vector.clauses), dtype)

    @classmethod
    def for_load_error(cls, vector_id: str, family: str, message: str) -> "Result":
        return cls(vector_id, family, None, [], message=message, kit_error=True)

    @classmethod
    def for_check(cls, family: str, name: str, clauses: list[str]) -> "Result":
        """An API check or a property: its level is its first clause's, from the spec's table."""
        return cls(f"{family}/{name}", family, level_of(clauses), list(clauses))

    def finish(self, nodeid: str, verdict: str, duration_s: float, device: str, longrepr: Any = None) -> None:
        """The verdict from pytest's report; a broken vector's failure is an error, and a failure without a message of
        its own takes the last line of pytest's report."""
        self.nodeid, self.duration_s, self.device = nodeid, float(duration_s), device
        self.verdict = "error" if self.kit_error and verdict == "fail" else verdict
        if self.verdict in ("unsupported", "fail", "error") and not self.message and longrepr:
            text = (longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)).strip()
            self.message = text.splitlines()[-1][:300] if text else None
        if self.verdict == "unsupported" and not self.unsupported:
            self.unsupported = self.message

    def as_dict(self) -> dict:
        """The JSON record: required fields always, the others when they hold something."""
        out = asdict(self)
        del out["kit_error"]
        return {k: v for k, v in out.items() if k in REQUIRED or v not in (None, [], {})}
