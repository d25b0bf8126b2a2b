"""The result record of one item: one type, built and filled here alone, serialised as ``results.schema.json``
describes it.  Collection makes a vector item's (``for_vector``, ``for_load_error``), ``of_item`` an API check's or
a property's; a vector's run fills it (``record_run``); pytest's report gives the verdict (``take_report``);
``for_lost_item`` stands for an item whose xdist worker died."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from conformance.clauses import level_of
from conformance.judge.compare import json_number
from conformance.report.document import verdict_of

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
    verdict: str = ""  # pass, fail, xfail, stale, unsupported, error (conformance.report.document.VERDICTS)
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
    twin: str | None = None  # how the run differs bit for bit from its twin (one device; the uninterrupted run)
    replicas: str | None = None  # the first disagreement between the candidate's replicas
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

    @classmethod
    def of_item(cls, item: Any) -> "Result":
        """The item's record: a vector item made its own; an API check or a property gets one here, once."""
        found = getattr(item, "result", None)
        if found is None:
            family = "property" if item.path.name == "test_properties.py" else "api"
            found = item.result = cls.for_check(family, item.name, [m.args[0] for m in item.iter_markers("clause")])
        return found

    @classmethod
    def for_lost_item(cls, report: Any) -> "Result":
        """An item whose pytest-xdist worker died while running it: pytest's report, no record of ours."""
        vid = report.nodeid.split("::")[-1]
        name, _, dtype = vid.partition("[")
        return cls(vector=name, family=name.split("/")[0], level=None, clauses=[], dtype=dtype.rstrip("]") or None,
                   nodeid=report.nodeid, verdict="fail", message=str(report.longrepr).strip().splitlines()[0][:300])

    def record_run(self, outcomes: list[Any]) -> None:
        """What a vector's run found, mode by mode (``drive.runner.Outcome``)."""
        ran = [o for o in outcomes if o.unsupported is None]
        self.candidate_seconds = sum(o.candidate_seconds for o in outcomes)
        self.modes = {o.mode: mode_record(o) for o in outcomes}
        self.observed = observability(ran)
        steps = [o.first_failing_step for o in ran if o.first_failing_step is not None]
        self.first_failing_step = min(steps) if steps else None
        self.max_ratio = json_number(max(o.comparison.max_ratio for o in ran))
        self.twin = next((o.twin for o in ran if o.twin), None)
        self.replicas = next((o.replicas for o in ran if o.replicas), None)

    def take_report(self, report: Any, device: str, tracker: Any = None) -> None:
        """The verdict and timing from pytest's report of the item (``tracker``: a property's examples)."""
        self.finish(report.nodeid, verdict_of(report), report.duration, device, report.longrepr)
        if self.family == "api" and report.when == "call":
            self.candidate_seconds = float(report.duration)  # an API check is calls into the candidate throughout
        if tracker is not None and report.when == "call":
            self.candidate_seconds, self.examples = tracker.candidate_seconds, tracker.examples
            self.worst_ratio, self.worst_example, self.notes = tracker.worst_ratio, tracker.worst, tracker.notes
        if self.verdict in ("xfail", "stale"):
            self.expected_divergence = getattr(report, "wasxfail", None) or str(report.longrepr)

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


def mode_record(outcome: Any) -> dict:
    """What the JSON keeps of one mode's run."""
    if outcome.unsupported:
        return {"unsupported": outcome.unsupported}
    cmp = outcome.comparison
    return {"passed": outcome.passed, "first_failing_step": outcome.first_failing_step, "error": outcome.error,
            "max_ratio": json_number(cmp.max_ratio), "worst": {n: w.as_dict() for n, w in cmp.worst.items()},
            "curve": cmp.curve, "liveness": outcome.liveness, "problems": cmp.problems,
            **({"twin": outcome.twin} if outcome.twin else {}), **({"replicas": outcome.replicas} if outcome.replicas else {})}


def observability(outcomes: list[Any]) -> dict[str, list[str]]:
    """What the modes that ran compared, and what the candidate never exposed."""
    seen = [o.comparison.observability() for o in outcomes]
    checked = [k for k in ("iterations", "variable", "m", "v", "vhat") if any(k in s["checked"] for s in seen)]
    hidden = [k for k in ("iterations", "variable", "m", "v", "vhat")
              if k not in checked and any(k in s["not_exposed"] for s in seen)]
    return {"checked": checked, "not_exposed": hidden}
