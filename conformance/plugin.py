"""The pytest plugin: ``pytest --candidate=module:Class`` runs the Adam vectors against any optimizer.

Registered through the ``pytest11`` entry point, so it is active wherever the
kit is installed.  Without ``--candidate`` it does nothing, and loading it
imports neither NumPy nor any framework.  With it, the bundled vectors (plus
``--vectors``) and the API checks of ``conformance/suite/test_api.py``
(``--tier=vectors``), or the property checks of
``conformance/suite/test_properties.py`` (``--tier=property``), are collected
instead of the usual test paths, unless explicit paths are given.  This module
holds options, hooks and fixtures; the session state is ``conformance.state``,
the records ``conformance.record``, the texts ``conformance.report``.
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

from conformance.adapters import ADAPTERS
from conformance.features import Feature
from conformance.state import STATE, State

CANDIDATE = "--candidate"
COMMAND = "--candidate-command"
ADAPTER = "--adapter"
VECTORS = "--vectors"
RAW = "--raw"
DEVICE = "--device"
EXECUTION = "--execution"
JSON = "--conformance-json"
HTML = "--conformance-html"
EXPECTATIONS = "--expectations"
TIMEOUT = "--conformance-timeout"
MODE = "--conformance-mode"
SCALE = "--scale"
TIER = "--tier"
EXAMPLES = "--property-examples"
EXPORT = "--export-failures"
LEVEL = "--level"
WITHOUT = "--without"
ISOLATE = "--isolate"
SUITE_DIR = Path(__file__).resolve().parent / "suite"
LEVELS = ("core", "api", "tf2-detail")
#: Optional methods of the NumPy-port protocol: an API check that needs one the port lacks is unsupported.
OPTIONAL_API = {"iterations", "get_slot", "get_slot_names", "add_slot", "weights", "get_weights", "set_weights",
                "get_config", "from_config", "variables", "add_weight"}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("adam-conformance", "Adam conformance kit")
    group.addoption(CANDIDATE, metavar="MODULE:ATTR", help="the optimizer class or factory to test, e.g. tf_keras.optimizers.legacy:Adam")
    group.addoption(COMMAND, metavar="COMMAND",
                    help="a port in any language, run as a process speaking spec/pipe-protocol.md, e.g. \"node ports/js/adam.js\"")
    group.addoption(ADAPTER, choices=sorted(ADAPTERS), help="adapter to use instead of the one chosen from the module name")
    group.addoption(VECTORS, action="append", default=[], metavar="PATH",
                    help="vector file or folder to add; a file named like a bundled family replaces it (repeatable)")
    group.addoption(RAW, action="store_true", help="turn the adapter's semantic translations off (measure native behaviour)")
    group.addoption(DEVICE, choices=["cpu", "gpu"], default="cpu", help="device for TensorFlow, torch and JAX candidates")
    group.addoption(EXECUTION, metavar="MODE",
                    help="how the candidate's step runs: eager (default); tf_keras and Keras 3 on TensorFlow: function, "
                         "xla; Keras 3 on JAX: jit; torch: foreach, fused, compile; optax: jit")
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
    group.addoption(SCALE, nargs="?", const=10**7, default=None, type=_elements, metavar="N",
                    help="also run the vectors flagged 'large' of at most N elements (deselected by default); plain "
                         "--scale: N = 1e7 (the 10^6 and 10^7 ones), --scale=1e8 adds the 10^8 one")
    group.addoption(MODE, choices=["both", "trajectory", "single-step"], default="both",
                    help="trajectory: the candidate runs free and the bound grows with the steps; single-step: the "
                         "candidate is given the oracle's state before every step; both (default)")
    group.addoption(LEVEL, default=",".join(LEVELS), metavar="LEVEL[,LEVEL]",
                    help="the spec levels the candidate claims, of core, api, tf2-detail (default: all three); items of "
                         "other levels are deselected")
    group.addoption(ISOLATE, action="store_true",
                    help="run the vector items in a child process (reused until it dies), so that a candidate that "
                         "crashes its interpreter (segfault, abort, os._exit) fails one item and the run goes on")
    group.addoption(WITHOUT, default="", metavar="FEATURE[,FEATURE]",
                    help="features the candidate does not implement (e.g. amsgrad,sparse,state loading): their items "
                         "are unsupported, with this as the reason")


def _levels(config: pytest.Config) -> tuple[str, ...]:
    chosen = tuple(x.strip() for x in config.getoption(LEVEL).split(",") if x.strip())
    unknown = [x for x in chosen if x not in LEVELS]
    if unknown or not chosen:
        raise pytest.UsageError(f"{LEVEL}={config.getoption(LEVEL)}: levels are core, api and tf2-detail")
    return chosen


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
    spec, command = config.getoption(CANDIDATE), config.getoption(COMMAND)
    if spec and command:
        raise pytest.UsageError(f"{CANDIDATE} and {COMMAND} name two candidates; give one")
    spec = spec or command
    if not spec:
        return
    from conformance import candidate, capabilities, expectations
    from conformance.features import Feature

    levels = _levels(config)
    try:
        without = Feature.parse([x for x in config.getoption(WITHOUT).split(",") if x.strip()], WITHOUT)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    if command:
        adapter = candidate.resolve_command(command, timeout=config.getoption(TIMEOUT))
    else:
        adapter = candidate.resolve(spec, config.getoption(ADAPTER), raw=config.getoption(RAW),
                                    device=config.getoption(DEVICE), execution=config.getoption(EXECUTION))
    isolation = None
    if config.getoption(ISOLATE):
        if command:
            raise pytest.UsageError(f"{ISOLATE}: a {COMMAND} candidate already runs in a process of its own")
        from conformance.isolation import Isolation

        isolation = Isolation(spec, config.getoption(ADAPTER), config.getoption(RAW), config.getoption(DEVICE),
                              config.getoption(EXECUTION), {})
        caps = isolation.probe(without, config.getoption(TIMEOUT))
        adapter.absent = caps.absent
    else:
        caps = capabilities.probe(adapter, without)
    exp_opt = config.getoption(EXPECTATIONS)
    try:
        exp = (None if exp_opt == "none" else expectations.load(exp_opt)) if exp_opt else expectations.for_candidate(
            spec, config.getoption(RAW), adapter.versions().get("backend"))
    except expectations.ExpectationsError as exc:
        raise pytest.UsageError(str(exc)) from None
    exp = exp.for_run(adapter.execution, adapter.versions().get("backend")) if exp else None
    state = State(spec, adapter, config.getoption(MODE), config.getoption(TIMEOUT), _vector_paths(config), exp,
                  capabilities=caps, levels=levels, device=adapter.device_used(), environment=_environment(adapter))
    state.isolation = isolation
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


def _result(item: pytest.Item) -> Any:
    """The item's result record: a vector item made its own; an API or property check gets one here, once."""
    found = getattr(item, "result", None)
    if found is None:
        from conformance.record import Result

        family = "property" if item.path.name == "test_properties.py" else "api"
        found = item.result = Result.for_check(family, item.name, [m.args[0] for m in item.iter_markers("clause")])
    return found


def _record(item: pytest.Item) -> dict:
    """The vector record behind an item, or {} for an item without one."""
    return getattr(getattr(item, "vector", None), "record", {})


def _elements(text: str) -> int:
    """``--scale``'s setting: a number of elements, written as ``1e8`` or ``100000000``."""
    try:
        return int(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of elements: {text!r} (write --scale=1e8)") from None


def conformance_id(item: pytest.Item) -> str:
    """The id expectations match: the vector id, or ``api/<check>`` for an API check."""
    return _result(item).vector


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    state = config.stash.get(STATE, None)
    if state is None:
        return
    limit = config.getoption(SCALE)
    large = [i for i in items if "large" in _record(i).get("flags", ())
             and (limit is None or sum(math.prod(v["shape"]) for v in _record(i)["variables"].values()) > limit)]
    other_level = [i for i in items if _result(i).level not in (None, *state.levels)]
    for item in other_level:
        level = _result(item).level
        state.deselected_levels[level] = state.deselected_levels.get(level, 0) + 1
    dropped = set(large) | set(other_level)
    if dropped:
        config.hook.pytest_deselected(items=[i for i in items if i in dropped])
        items[:] = [i for i in items if i not in dropped]
    state.families = {_result(i).family for i in items}
    if state.expectations is None:
        return
    for item in items:
        entry = state.expectations.lookup(conformance_id(item), getattr(item, "dtype", None))
        if entry is not None:
            item.add_marker(pytest.mark.xfail(reason=f"{entry.clause}: {entry.reason}", strict=True, raises=Exception))
    for entry in state.stale_expectations():
        warnings.warn(pytest.PytestWarning(f"{state.expectations.label}: entry '{entry.id}' matches no collected item"))


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = config.stash.get(STATE, None)
    if state is None:
        return []
    from conformance.report import header_lines

    return [f"adam-conformance: {line}" for line in header_lines(state.meta())]


@pytest.fixture
def adam_api(request: pytest.FixtureRequest) -> Any:
    """Helpers to drive the candidate's optimizer_v2 API (skipped as unsupported when it has none)."""
    from conformance.adapters import Unsupported

    state = request.config.stash.get(STATE, None)
    if state is None:
        pytest.skip("no --candidate given")
    try:
        api = state.adapter.v2_api()
    except Unsupported as exc:
        _result(request.node).unsupported = str(exc)
        pytest.skip(f"unsupported: {exc}")
    # Checks whose subject is not AMSGrad use it only where the candidate has it (vhat is one more slot to see).
    api.amsgrad = Feature.AMSGRAD not in state.adapter.missing()
    return api


@pytest.fixture
def adam_aliases(request: pytest.FixtureRequest) -> tuple[Any, dict[str, Any]]:
    """The candidate and what the page's names are in the installed TensorFlow (unsupported outside TensorFlow)."""
    from conformance.adapters import Unsupported

    state = request.config.stash.get(STATE, None)
    if state is None:
        pytest.skip("no --candidate given")
    try:
        return state.adapter.candidate, state.adapter.page_aliases()
    except Unsupported as exc:
        _result(request.node).unsupported = str(exc)
        pytest.skip(f"unsupported: {exc}")


@pytest.fixture
def property_env(request: pytest.FixtureRequest) -> Any:
    """What the property checks share (``conformance.property.Environment``)."""
    state = request.config.stash.get(STATE, None)
    if state is None:
        pytest.skip("no --candidate given")
    from conformance.property import Environment

    return Environment(state, request.config, request.node.name)


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Any:
    """In the kit's checks, what the candidate does not implement makes the check unsupported, not failed."""
    if pyfuncitem.config.stash.get(STATE, None) is None or pyfuncitem.path.parent != SUITE_DIR:
        return (yield)
    from conformance.errors import NOT_IMPLEMENTED, not_implemented

    try:
        return (yield)
    except NOT_IMPLEMENTED as exc:
        _result(pyfuncitem).unsupported = reason = not_implemented(exc)
        pytest.skip(f"unsupported: {reason}")
    except AttributeError as exc:
        if getattr(exc, "name", None) not in OPTIONAL_API:
            raise
        _result(pyfuncitem).unsupported = reason = f"not implemented by the candidate: it has no {exc.name}"
        pytest.skip(f"unsupported: {reason}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    report = yield
    state = item.config.stash.get(STATE, None)
    if state is None or (report.when != "call" and report.passed) or report.when == "teardown":
        return report
    from conformance.report import verdict_of

    result = _result(item)
    result.finish(item.nodeid, verdict_of(report), report.duration, state.device, report.longrepr)
    if result.family == "api" and report.when == "call":
        result.candidate_seconds = float(report.duration)  # an API check is calls into the candidate throughout
    if result.family == "property" and report.when == "call":
        tracker = state.trackers.get(item.name)
        if tracker is not None:
            result.candidate_seconds, result.examples = tracker.candidate_seconds, tracker.examples
            result.worst_ratio, result.worst_example, result.notes = tracker.worst_ratio, tracker.worst, tracker.notes
    if result.verdict in ("xfail", "stale"):
        result.expected_divergence = getattr(report, "wasxfail", None) or str(report.longrepr)
    report.user_properties.append(("adam_conformance", result.as_dict()))
    return report


class ResultCollector:
    """Gathers the result records that ride on the reports (so they also arrive from xdist workers)."""

    def __init__(self, state: State) -> None:
        self.state = state

    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        self.state.running = nodeid

    def pytest_runtest_logfinish(self, nodeid: str, location: Any) -> None:
        self.state.running = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        records = [value for key, value in report.user_properties if key == "adam_conformance"]
        if not records and report.failed and "crashed" in str(report.longrepr):
            # pytest-xdist reports a worker that died with the item it was running, and no record of ours.
            from conformance.record import Result

            vid = report.nodeid.split("::")[-1]
            name, _, dtype = vid.partition("[")
            lost = Result(vector=name, family=name.split("/")[0], level=None, clauses=[], dtype=dtype.rstrip("]") or None,
                          nodeid=report.nodeid, verdict="fail", message=str(report.longrepr).strip().splitlines()[0][:300])
            records = [lost.as_dict()]
        self.state.results += records


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
        state.remember_verified()
        # Added to what is there: pytest-xdist's workers and their controller each write the key.
        known = set(session.config.cache.get(state.cache_key, []))
        session.config.cache.set(state.cache_key, sorted(known | state.verified))
    if hasattr(session.config, "workerinput"):
        return
    if state.executed() == 0 and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED  # zero items compared is an error, never a pass
    json_path, html_path = session.config.getoption(JSON), session.config.getoption(HTML)
    if json_path or html_path:
        from conformance import html, report

        doc = report.document(state.meta(), state.results)
        if json_path:
            report.write_json(json_path, doc)
        if html_path:
            html.write(html_path, doc)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is None or hasattr(config, "workerinput"):
        return
    from conformance.report import terminal_lines

    terminalreporter.section("Adam conformance")
    avoided = state.expectations.avoid if state.expectations else {}
    stale = [(e.id, e.clause) for e in state.stale_expectations()]
    for line, red in terminal_lines(state.meta(), state.results, avoided, stale, executed=state.executed()):
        terminalreporter.write_line(line, red=red)
    if exitstatus == pytest.ExitCode.INTERRUPTED and state.running:
        terminalreporter.write_line(f"ERROR: the run was cut short while {state.running} was running; the items after "
                                    "it did not run (--isolate keeps a crashing candidate to one item)", red=True)
