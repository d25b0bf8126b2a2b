"""The pytest plugin: ``pytest --candidate=module:Class`` runs the Adam vectors against any optimizer.

Registered through the ``pytest11`` entry point, so it is active wherever the
kit is installed.  Without ``--candidate`` it does nothing (and imports no
framework).  With it, the bundled vectors (plus ``--vectors``) and the API
checks of ``conformance/suite/test_api.py`` (``--tier=vectors``), or the
property checks of ``conformance/suite/test_properties.py`` (``--tier=property``),
are collected instead of the usual test paths, unless explicit paths are
given.  Logic lives in the sibling modules; this one holds options, hooks and
fixtures.
"""

from __future__ import annotations

import functools
import hashlib
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CANDIDATE = "--candidate"
ADAPTER = "--adapter"
VECTORS = "--vectors"
RAW = "--raw"
DEVICE = "--device"
JSON = "--conformance-json"
HTML = "--conformance-html"
EXPECTATIONS = "--expectations"
TIMEOUT = "--conformance-timeout"
MODE = "--conformance-mode"
SCALE = "--scale"
TIER = "--tier"
EXAMPLES = "--property-examples"
EXPORT = "--export-failures"
SUITE_DIR = Path(__file__).resolve().parent / "suite"


@dataclass
class State:
    """Session state, kept in ``config.stash``."""

    spec: str
    adapter: Any
    mode: str
    timeout: float
    vector_paths: list[Path]
    expectations: Any = None
    device: str = ""
    environment: dict = field(default_factory=dict)
    trackers: dict = field(default_factory=dict)  # property tier: name -> conformance.property.Tracker
    cache_key: str = ""
    verified: set | None = None  # sha256 of files verified by an earlier run of this kit (pytest's cache)
    families: set = field(default_factory=set)  # the families collected (vector families, "api", "property")
    results: list[dict] = field(default_factory=list)
    started: float = 0.0  # the kit's run: from the start of collection to the end of the last item
    collected: float = 0.0
    finished: float = 0.0
    _cache: dict = field(default_factory=dict)

    def load(self, path: Path) -> tuple[list, list]:
        """Load a vector file once per session."""
        from conformance.loader import load_file

        key = Path(path).resolve()
        if key not in self._cache:
            self._cache[key] = load_file(key, self.verified)
        return self._cache[key]

    def stale_expectations(self) -> list:
        """Entries that matched nothing, among those about a family this run collected (``api/...``, ``sparse/...``)."""
        if self.expectations is None:
            return []
        return [e for e in self.expectations.stale()
                if e.id.split("/")[0] in self.families or not any(c.isalnum() for c in e.id.split("/")[0])]

    @functools.cached_property
    def vector_set(self) -> dict:
        """The spec version and the files of this run's vector set, with a digest of their bytes."""
        from vectors.generate import SPEC_VERSION

        digest = hashlib.sha256()
        for path in self.vector_paths:
            digest.update(path.read_bytes())
        return {"spec_version": SPEC_VERSION, "vectors": [p.name for p in self.vector_paths], "sha256": digest.hexdigest()[:16]}


STATE = pytest.StashKey[State]()


def pytest_addoption(parser: pytest.Parser) -> None:
    from conformance.adapters import ADAPTERS

    group = parser.getgroup("adam-conformance", "Adam conformance kit")
    group.addoption(CANDIDATE, metavar="MODULE:ATTR", help="the optimizer class or factory to test, e.g. tf_keras.optimizers.legacy:Adam")
    group.addoption(ADAPTER, choices=sorted(ADAPTERS), help="adapter to use instead of the one chosen from the module name")
    group.addoption(VECTORS, action="append", default=[], metavar="PATH",
                    help="vector file or folder to add; a file named like a bundled family replaces it (repeatable)")
    group.addoption(RAW, action="store_true", help="turn the adapter's semantic translations off (measure native behaviour)")
    group.addoption(DEVICE, choices=["cpu", "gpu"], default="cpu", help="device for TensorFlow, torch and JAX candidates")
    group.addoption(JSON, metavar="PATH", help="write every result as JSON (schema: conformance/results.schema.json)")
    group.addoption(HTML, metavar="PATH", help="write a self-contained HTML report (matrix, plots, diagnosis, environment)")
    group.addoption(EXPECTATIONS, metavar="FILE|none",
                    help="known divergences to report as expected failures (default: the bundled file of a known candidate)")
    group.addoption(TIMEOUT, type=float, default=120.0, metavar="SECONDS",
                    help="per-item limit for a candidate's run; 0 for none (default 120)")
    group.addoption(TIER, choices=["vectors", "property", "all"], default="vectors",
                    help="vectors: the stored vectors and API checks (default); property: Hypothesis-generated scenarios "
                         "and metamorphic checks; all: both")
    group.addoption(EXAMPLES, type=int, default=30, metavar="N",
                    help="examples per property in the property tier (default 30); the seed is --hypothesis-seed")
    group.addoption(EXPORT, metavar="DIR",
                    help="write each property's shrunk counterexample as a vector file in DIR (run it with --vectors)")
    group.addoption(SCALE, action="store_true",
                    help="also run the vectors flagged 'large' (10^6 to 10^7 elements; deselected by default)")
    group.addoption(MODE, choices=["both", "trajectory", "single-step"], default="both",
                    help="trajectory: the candidate runs free and the bound grows with the steps; single-step: the "
                         "candidate is given the oracle's state before every step; both (default)")


def _vector_paths(config: pytest.Config) -> list[Path]:
    from conformance.loader import bundled_paths

    extra: list[Path] = []
    for raw in config.getoption(VECTORS):
        path = Path(raw)
        if path.is_dir():
            extra += sorted(path.glob("*.yaml"))
        elif path.is_file():
            extra.append(path)
        else:
            raise pytest.UsageError(f"{VECTORS}={raw}: no such file or folder")
    replaced = {p.name for p in extra}
    return [p for p in bundled_paths() if p.name not in replaced] + [p.resolve() for p in extra]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "clause(id): the spec clause an API check tests")
    spec = config.getoption(CANDIDATE)
    if not spec:
        return
    from conformance import candidate, expectations

    adapter = candidate.resolve(spec, config.getoption(ADAPTER), raw=config.getoption(RAW), device=config.getoption(DEVICE))
    exp_opt = config.getoption(EXPECTATIONS)
    try:
        exp = (None if exp_opt == "none" else expectations.load(exp_opt)) if exp_opt else expectations.for_candidate(
            spec, config.getoption(RAW), adapter.versions().get("backend"))
    except expectations.ExpectationsError as exc:
        raise pytest.UsageError(str(exc)) from None
    state = State(spec, adapter, config.getoption(MODE), config.getoption(TIMEOUT), _vector_paths(config), exp,
                  device=adapter.device_used(), environment=_environment(adapter))
    config.stash[STATE] = state
    cache = getattr(config, "cache", None)  # absent with -p no:cacheprovider: then every file is checked
    if cache is not None:
        from conformance.loader import fingerprint

        state.cache_key = f"adam-conformance/verified/{fingerprint()}"
        state.verified = set(cache.get(state.cache_key, []))
    config.pluginmanager.register(ResultCollector(state), "adam-conformance-results")
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        tier = config.getoption(TIER)
        paths = [str(p) for p in state.vector_paths] + [str(SUITE_DIR / "test_api.py")] if tier != "property" else []
        config.args[:] = paths + ([str(SUITE_DIR / "test_properties.py")] if tier != "vectors" else [])


def _environment(adapter: Any) -> dict:
    """What affects the numbers besides the candidate: flush-to-zero per dtype, and the platform."""
    import platform

    import numpy

    return {**adapter.environment(), "python": platform.python_version(), "platform": platform.platform(),
            "machine": platform.machine(), "numpy": numpy.__version__}


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> Any:
    state = parent.config.stash.get(STATE, None)
    if state is None or file_path.suffix not in (".yaml", ".yml"):
        return None
    from conformance.items import VectorFile

    try:  # files outside the rootdir (an installed kit, --vectors elsewhere) still get readable node ids
        nodeid = file_path.relative_to(parent.config.rootpath).as_posix()
    except ValueError:
        nodeid = f"{file_path.parent.name}/{file_path.name}"
    return VectorFile.from_parent(parent, path=file_path, nodeid=nodeid)


def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> Any:
    """The kit's own check modules get node ids like ``suite/test_api.py::...`` wherever the kit is installed."""
    if module_path.parent == SUITE_DIR and parent.config.stash.get(STATE, None) is not None:
        return pytest.Module.from_parent(parent, path=module_path, nodeid=f"suite/{module_path.name}")
    return None


def _family(item: pytest.Item) -> str:
    """A vector item's family, or "api" / "property" for the kit's checks."""
    record = getattr(item, "conformance", None)
    if record is not None:
        return record["family"]
    return "property" if item.path.name == "test_properties.py" else "api"


def conformance_id(item: pytest.Item) -> str:
    """The id expectations match: the vector id, or ``api/<check>`` for an API check."""
    vector = getattr(item, "vector", None)
    return vector.id if vector is not None else f"{_family(item)}/{item.name}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    state = config.stash.get(STATE, None)
    if state is None:
        return
    if not config.getoption(SCALE):
        large = [i for i in items if "large" in getattr(getattr(i, "vector", None), "record", {}).get("flags", ())]
        if large:
            config.hook.pytest_deselected(items=large)
            items[:] = [i for i in items if i not in set(large)]
    if state.expectations is None:
        return
    for item in items:
        entry = state.expectations.lookup(conformance_id(item), getattr(item, "dtype", None))
        if entry is not None:
            item.add_marker(pytest.mark.xfail(reason=f"{entry.clause}: {entry.reason}", strict=True, raises=Exception))
    state.families = {_family(i) for i in items}
    for entry in state.stale_expectations():
        warnings.warn(pytest.PytestWarning(f"{state.expectations.label}: entry '{entry.id}' matches no collected item"))


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = config.stash.get(STATE, None)
    if state is None:
        return []
    a = state.adapter
    versions = ", ".join(f"{k} {v}" for k, v in a.versions().items())
    vs = state.vector_set
    lines = [
        f"adam-conformance: candidate {state.spec} (adapter {a.name}{', raw' if a.raw else ''}; {versions})",
        f"adam-conformance: device {a.device_used()}; mode {state.mode}; timeout {state.timeout:g} s",
        f"adam-conformance: flush-to-zero in {', '.join(d for d, on in state.environment['flush_to_zero'].items() if on) or 'no dtype'}",
        f"adam-conformance: vector set spec {vs['spec_version']}, {len(vs['vectors'])} files, sha256 {vs['sha256']}",
        f"adam-conformance: expectations {state.expectations.label if state.expectations else 'none'}",
    ]
    lines += [f"adam-conformance: translation: {t}" for t in a.translations]
    return lines


@pytest.fixture
def adam_api(request: pytest.FixtureRequest) -> Any:
    """Helpers to drive the candidate's optimizer_v2 API (skipped as unsupported when it has none)."""
    from conformance.adapters import Unsupported

    state = request.config.stash.get(STATE, None)
    if state is None:
        pytest.skip("no --candidate given")
    try:
        return state.adapter.v2_api()
    except Unsupported as exc:
        pytest.skip(f"unsupported: {exc}")


@pytest.fixture
def property_env(request: pytest.FixtureRequest) -> Any:
    """What the property checks share (``conformance.property.Environment``)."""
    state = request.config.stash.get(STATE, None)
    if state is None:
        pytest.skip("no --candidate given")
    from conformance.property import Environment

    return Environment(state, request.config, request.node.name)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    outcome = yield
    report = outcome.get_result()
    state = item.config.stash.get(STATE, None)
    if state is None or (report.when != "call" and report.passed) or report.when == "teardown":
        return
    record = dict(getattr(item, "conformance", None) or _check_record(item))
    from conformance.report import verdict_of

    record.update(nodeid=item.nodeid, verdict=verdict_of(report), duration_s=float(report.duration), device=state.device)
    if record.pop("kit_error", False) and record["verdict"] == "fail":
        record["verdict"] = "error"  # the vector is broken, not the candidate
    if record["family"] == "api" and report.when == "call":
        record["candidate_seconds"] = float(report.duration)  # an API check is calls into the candidate throughout
    if record["family"] == "property" and report.when == "call":
        tracker = state.trackers.get(item.name)
        if tracker is not None:
            record.update(candidate_seconds=tracker.candidate_seconds, examples=tracker.examples,
                          worst_ratio=tracker.worst_ratio, worst_example=tracker.worst, notes=tracker.notes)
    if record["verdict"] in ("xfail", "stale"):
        record["expected_divergence"] = getattr(report, "wasxfail", None) or str(report.longrepr)
    if record["verdict"] in ("unsupported", "fail", "error") and not record.get("message") and report.longrepr:
        text = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        record["message"] = text.strip().splitlines()[-1][:300] if text.strip() else None
    report.user_properties.append(("adam_conformance", record))


def _check_record(item: pytest.Item) -> dict:
    """The result record of an API check, its level taken from its clause."""
    clauses = [m.args[0] for m in item.iter_markers("clause")]
    first = clauses[0] if clauses else ""
    level = "tf2-detail" if first.startswith("ADAM-TF2-") else ("api" if first.startswith("ADAM-API-") else "core")
    family = _family(item)
    return {"vector": conformance_id(item), "family": family,
            "level": level, "dtype": None, "message": None, "clauses": clauses}


class ResultCollector:
    """Gathers the result records that ride on the reports (so they also arrive from xdist workers)."""

    def __init__(self, state: State) -> None:
        self.state = state

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.state.results += [value for key, value in report.user_properties if key == "adam_conformance"]


def _executed(state: State) -> int:
    return sum(1 for r in state.results if r["family"] != "api" and r["verdict"] in ("pass", "fail", "xfail", "stale"))


@pytest.hookimpl(wrapper=True)
def pytest_collection(session: pytest.Session) -> Any:
    state = session.config.stash.get(STATE, None)
    if state is not None:
        state.started = time.perf_counter()
    try:
        return (yield)
    finally:
        if state is not None:
            state.collected = time.perf_counter()


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session: pytest.Session) -> Any:
    try:
        return (yield)
    finally:
        state = session.config.stash.get(STATE, None)
        if state is not None:
            state.finished = time.perf_counter()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash.get(STATE, None)
    if state is None:
        return
    if state.verified is not None and getattr(session.config, "cache", None) is not None:
        session.config.cache.set(state.cache_key, sorted(state.verified))
    if hasattr(session.config, "workerinput"):
        return
    if _executed(state) == 0 and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED  # zero vectors executed is an error, never a pass
    json_path, html_path = session.config.getoption(JSON), session.config.getoption(HTML)
    if json_path or html_path:
        from conformance import html, report

        doc = report.document(_meta(state), state.results)
        if json_path:
            report.write_json(json_path, doc)
        if html_path:
            html.write(html_path, doc)


def _meta(state: State) -> dict:
    a = state.adapter
    total = (state.finished or time.perf_counter()) - (state.started or time.perf_counter())
    inside = sum(r.get("candidate_seconds", 0.0) for r in state.results)
    return {
        "candidate": state.spec, "adapter": a.name, "raw": a.raw, "device": state.device,
        "mode": state.mode, "translations": a.translations, "versions": a.versions(), "vector_set": state.vector_set,
        "environment": state.environment,
        "expectations": state.expectations.label if state.expectations else None,
        "stale_expectations": [e.id for e in state.stale_expectations()],
        "timing": {"total_s": round(total, 3), "candidate_s": round(inside, 3),
                   "collection_s": round(max(state.collected - state.started, 0.0), 3)},
    }


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is None or hasattr(config, "workerinput"):
        return
    from conformance.report import summary_lines

    tr = terminalreporter
    tr.section("Adam conformance")
    tr.write_line(f"candidate {state.spec} via the {state.adapter.name} adapter{' (raw)' if state.adapter.raw else ''}")
    for line in summary_lines(state.results):
        tr.write_line(line)
    props = [r for r in state.results if r["family"] == "property" and "examples" in r]
    if props and state.expectations and state.expectations.avoid:
        for feature, reason in state.expectations.avoid.items():
            tr.write_line(f"property tier: not drawn, known divergence: {feature} ({reason})")
    for r in props:  # from the result records, so that they also arrive from xdist workers
        tr.write_line(f"property {r['vector'].removeprefix('property/test_').replace('_', '-')}: {r['examples']} examples, "
                      f"largest share of the error bound used {r['worst_ratio']:.3g}"
                      + (f" ({r['worst_example']})" if r.get("worst_example") else ""))
        for note in r.get("notes", []):
            tr.write_line(f"  {note}")
    if state.expectations:
        for entry in state.stale_expectations():
            tr.write_line(f"STALE EXPECTATION: {entry.id} ({entry.clause}) matched no item in {state.expectations.label}")
    timing = _meta(state)["timing"]
    share = 100.0 * (1 - timing["candidate_s"] / timing["total_s"]) if timing["total_s"] else 0.0
    tr.write_line(f"time: {timing['total_s']:.2f} s from collection to the last item ({timing['collection_s']:.2f} s "
                  f"loading and verifying vectors), {timing['candidate_s']:.2f} s of it inside the candidate "
                  f"(kit's share {share:.0f}%)")
    if _executed(state) == 0:
        tr.write_line("ERROR: zero vectors were executed against the candidate; this is never a pass", red=True)
