"""The pytest plugin: ``pytest --candidate=module:Class`` runs the Adam vectors against any optimizer.

Registered through the ``pytest11`` entry point, so it is active wherever the
kit is installed.  Without ``--candidate`` it does nothing, and loading it
imports neither NumPy nor any framework.  With it, the bundled vectors (plus
``--vectors``) and the API checks of ``conformance/suite/test_api.py``
(``--tier=vectors``), or the property checks of
``conformance/suite/test_properties.py`` (``--tier=property``), are collected
instead of the usual test paths, unless explicit paths are given.  This module
holds options, hooks and fixtures; the session kit is ``conformance.session``,
the records ``conformance.report.record``, the texts ``conformance.report.terminal``.
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
from conformance.clauses import DEFAULT_LEVELS, LEVELS
from conformance.session import SESSION, Session

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
CHECKPOINT = "--checkpoint"
PROFILE = "--profile"
DIAGNOSIS = "--conformance-diagnosis"
WORLD_SIZE = "--world-size"
SPLIT = "--split"
RANK_HOSTS = "--rank-hosts"
RANK_LAUNCHER = "--rank-launcher"
SUITE_DIR = Path(__file__).resolve().parent / "suite"
PARTIAL = ".partial.jsonl"  # --conformance-json's companion: the records written as the items finish
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
                         "xla, mirrored, mirrored-function; Keras 3 on JAX: jit; torch: foreach, fused, compile; optax: "
                         "jit, sharded, pmap; tf_keras and Keras 3: fit, fit-mixed (every step through model.fit); on "
                         "several ranks (--world-size): torch: ddp, zero, fsdp2, each also -foreach, -fused; tf_keras: "
                         "multiworker, multiworker-function")
    group.addoption(WORLD_SIZE, type=_world_size, default=None, metavar="N",
                    help="replicas or ranks of a distributed execution mode (default 2; docs/adapters.md, "
                         "\"Distributed execution modes\")")
    group.addoption(SPLIT, choices=["even", "one-rank"], default=None,
                    help="how each step's gradient is divided among the ranks of a distributed execution mode, the "
                         "engine's combination giving the vector's gradient bit for bit either way: even (default; "
                         "G/N per rank where the engine sums, G where it averages) or one-rank (all of it to rank 0)")
    group.addoption(RANK_HOSTS, metavar="HOST[,HOST...]", default=None,
                    help="the ranks' hosts, one per rank or one for all (default 127.0.0.1): the addresses the engine's "
                         "rendezvous uses; with another host, --rank-launcher starts each rank there")
    group.addoption(RANK_LAUNCHER, metavar="COMMAND", default=None,
                    help="a command with {host} that runs a program on that host (e.g. 'ssh {host}'), with the rank's "
                         "command appended; the rank speaks to the kit over its standard input and output")
    group.addoption(JSON, metavar="PATH",
                    help="write every result as JSON (schema: conformance/report/results.schema.json); while the run "
                         "goes on, PATH.partial.jsonl holds each item's record as it finishes (one JSON object a line), "
                         "so a run that dies keeps what it finished; removed once PATH is written")
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
    group.addoption(LEVEL, default=",".join(DEFAULT_LEVELS), metavar="LEVEL[,LEVEL]",
                    help="the spec levels the candidate claims, of core, api, tf2-detail, later (default: the first "
                         "three, TF 2.0; later is behaviour adopted after it); items of other levels are deselected")
    group.addoption(ISOLATE, action="store_true",
                    help="run every call into the candidate (the probe, vector items, API and property checks) in a "
                         "child process (reused until it dies), so that a candidate that crashes its interpreter "
                         "(segfault, abort, os._exit) fails one item and the run goes on")
    group.addoption(CHECKPOINT, nargs="?", const="", default=None, metavar="FORMAT",
                    help="save every vector's run at its middle step with the framework's own serialization (FORMAT: "
                         "one the adapter offers; bare: its default), restore it in a fresh process and resume there: "
                         "judged against the uninterrupted run (bit for bit) and the oracle, in trajectory mode")
    group.addoption(PROFILE, default="", metavar="DEVIATION[,DEVIATION]",
                    help="judge the candidate against the spec with these known deviations (names as the kit prints "
                         "them, e.g. Algorithm1Epsilon,PerVariableStep), under the same error model; any further "
                         "difference still fails (default: the profile its expectations file names, if any)")
    group.addoption(DIAGNOSIS, choices=["on", "off"], default="on",
                    help="on (default): a numerical failure is explained by the known wrong variants it matches "
                         "(replays of each, seconds per failing item); off: failures are reported without it")
    group.addoption(WITHOUT, default="", metavar="FEATURE[,FEATURE]",
                    help="features the candidate does not implement (e.g. amsgrad,sparse,state loading): their items "
                         "are unsupported, with this as the reason")


def _world_size(text: str) -> int:
    """``--world-size``'s setting: a whole number of ranks, at least 1."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"not a number of ranks: {text!r} (write --world-size=2)")
    return n


def _distributed(config: pytest.Config) -> dict:
    """``world_size`` and ``split`` for the adapter (defaults 2 and even)."""
    return {"world_size": config.getoption(WORLD_SIZE) or 2, "split": config.getoption(SPLIT) or "even"}


def _placement(config: pytest.Config, adapter: Any) -> Any:
    """Where the ranks of a rank-process mode run (``--rank-hosts``, ``--rank-launcher``); None: here, as children."""
    hosts, launcher = config.getoption(RANK_HOSTS), config.getoption(RANK_LAUNCHER)
    if hosts is None and launcher is None:
        return None
    option = RANK_HOSTS if hosts is not None else RANK_LAUNCHER
    if adapter.execution not in adapter.rank_executions:
        raise pytest.UsageError(f"{option}: applies to the modes whose ranks are processes ("
                                f"{', '.join(adapter.rank_executions) or 'none for this adapter'}); --execution="
                                f"{adapter.execution} runs in the kit's process")
    names = tuple(h.strip() for h in (hosts or "127.0.0.1").split(",") if h.strip())
    if not names or len(names) not in (1, adapter.world_size):
        raise pytest.UsageError(f"{RANK_HOSTS}={hosts}: give one host, or one per rank ({adapter.world_size})")
    if launcher is not None and "{host}" not in launcher and len(set(names)) > 1:
        raise pytest.UsageError(f"{RANK_LAUNCHER}={launcher}: the command must say where, with {{host}}")
    if launcher is None and set(names) != {"127.0.0.1"}:
        raise pytest.UsageError(f"{RANK_HOSTS}={hosts}: the kit starts its ranks here; another host needs "
                                f"{RANK_LAUNCHER} (e.g. 'ssh {{host}}')")
    from conformance.adapters.ranks import Placement

    return Placement(names, launcher)


def _levels(config: pytest.Config) -> tuple[str, ...]:
    chosen = tuple(x.strip() for x in config.getoption(LEVEL).split(",") if x.strip())
    unknown = [x for x in chosen if x not in LEVELS]
    if unknown or not chosen:
        raise pytest.UsageError(f"{LEVEL}={config.getoption(LEVEL)}: levels are " + ", ".join(LEVELS))
    return chosen


def _profile(adapter: tuple[str, ...], option: str, exp: Any) -> tuple[str, ...]:
    """The deviations the candidate is judged with: its adapter's (a framework's convention), then ``--profile``'s,
    else its expectations file's; a name the kit does not know, or deviations that cannot make one port, is a usage
    error."""
    from reference import variants

    declared = tuple(x.strip() for x in option.split(",") if x.strip()) if option else tuple(exp.profile if exp else ())
    names = tuple(dict.fromkeys(adapter + declared))
    try:
        variants.compose(*(variants.deviation(name) for name in names))
    except ValueError as exc:
        raise pytest.UsageError(f"{PROFILE}: {exc}") from None
    return names


def _vector_paths(config: pytest.Config) -> list[Path]:
    from conformance.load.files import bundled_paths

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
    from conformance.drive import resolve, probe
    from conformance import expectations
    from conformance.features import Feature

    levels = _levels(config)
    try:
        without = Feature.parse([x for x in config.getoption(WITHOUT).split(",") if x.strip()], WITHOUT)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    if command:
        adapter = resolve.resolve_command(command, timeout=config.getoption(TIMEOUT))
    else:
        adapter = resolve.resolve(spec, config.getoption(ADAPTER), raw=config.getoption(RAW),
                                  device=config.getoption(DEVICE), execution=config.getoption(EXECUTION),
                                  **_distributed(config))
    given = [o for o in (WORLD_SIZE, SPLIT) if config.getoption(o) is not None]
    if given and not adapter.distributed:
        raise pytest.UsageError(f"{given[0]}: applies to distributed execution modes only; --execution="
                                f"{adapter.execution} runs on one device")
    adapter.placement = _placement(config, adapter)
    isolation = None
    if config.getoption(ISOLATE):
        if command:
            raise pytest.UsageError(f"{ISOLATE}: a {COMMAND} candidate already runs in a process of its own")
        from conformance.isolation import Isolation

        isolation = Isolation(spec, config.getoption(ADAPTER), config.getoption(RAW), config.getoption(DEVICE),
                              config.getoption(EXECUTION), {}, **_distributed(config))
        caps = isolation.probe(without, config.getoption(TIMEOUT))
        adapter.absent = caps.absent
    else:
        caps = probe.probe(adapter, without)
    adapter, mode = _checkpoint(config, adapter, spec)
    exp_opt = config.getoption(EXPECTATIONS)
    try:
        exp = (None if exp_opt == "none" else expectations.load(exp_opt)) if exp_opt else expectations.for_candidate(
            spec, config.getoption(RAW), adapter.versions().get("backend"))
    except expectations.ExpectationsError as exc:
        raise pytest.UsageError(str(exc)) from None
    split = adapter.split if getattr(adapter, "distributed", False) else None
    resumed = (getattr(adapter, "checkpoint", None) or {}).get("format")  # a checkpoint run's format, else None
    exp = exp.for_run(adapter.execution, adapter.versions().get("backend"), split, resumed) if exp else None
    kit = Session(spec, adapter, mode, config.getoption(TIMEOUT), _vector_paths(config), exp,
                  capabilities=caps, levels=levels, device=adapter.device_used(), environment=_environment(adapter))
    kit.isolation = isolation
    kit.profile = _profile(adapter.profile(), config.getoption(PROFILE), exp)
    kit.diagnosis = config.getoption(DIAGNOSIS) == "on"
    config.stash[SESSION] = kit
    cache = getattr(config, "cache", None)  # absent with -p no:cacheprovider: then every file is checked
    if cache is not None:
        from conformance.load.files import fingerprint

        kit.cache_key = f"adam-conformance/verified/{fingerprint()}"
        kit.verified = set(cache.get(kit.cache_key, []))
    # The controller streams the records (pytest-xdist's workers send theirs to it on their reports).
    stream = config.getoption(JSON) and not hasattr(config, "workerinput")
    config.pluginmanager.register(ResultCollector(kit, f"{config.getoption(JSON)}{PARTIAL}" if stream else None),
                                  "adam-conformance-results")
    config.pluginmanager.register(SelectedVectors(), "adam-conformance-verify")
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        tier = config.getoption(TIER)
        paths = [str(p) for p in kit.vector_paths] + [str(SUITE_DIR / "test_api.py")] if tier != "property" else []
        if command and tier != "property":  # what only a process is asked: P-5's all-null apply (suite/test_process.py)
            paths.append(str(SUITE_DIR / "test_process.py"))
        config.args[:] = paths + ([str(SUITE_DIR / "test_properties.py")] if tier != "vectors" else [])


def _checkpoint(config: pytest.Config, adapter: Any, spec: str) -> tuple[Any, str]:
    """The adapter and judging mode of the run: with ``--checkpoint``, the adapter that resumes every vector from a
    checkpoint in a fresh process (``conformance.checkpoint``), judged in trajectory mode."""
    fmt, mode = config.getoption(CHECKPOINT), config.getoption(MODE)
    if fmt is None:
        return adapter, mode
    formats = adapter.checkpoint_formats
    if not formats:
        raise pytest.UsageError(f"{CHECKPOINT}: the {adapter.name} adapter has no checkpoint format")
    fmt = fmt or next(iter(formats))
    if fmt not in formats:
        raise pytest.UsageError(f"{CHECKPOINT}={fmt}: the {adapter.name} adapter has no such format "
                                f"(it has: {', '.join(formats)})")
    if config.getoption(ISOLATE):
        raise pytest.UsageError(f"{CHECKPOINT} runs the resumed half in a process of its own; drop {ISOLATE}")
    if mode == "single-step":
        raise pytest.UsageError(f"{CHECKPOINT}: single-step mode loads the oracle's state before every step, which "
                                "would replace the restored one; checkpoint runs are judged in trajectory mode")
    from conformance.checkpoint import CheckpointAdapter

    wrapped = CheckpointAdapter(adapter, fmt, spec, config.getoption(TIMEOUT))
    config.add_cleanup(wrapped.close)
    return wrapped, "trajectory"


def _environment(adapter: Any) -> dict:
    """What affects the numbers besides the candidate: flush-to-zero per dtype, and the platform."""
    import platform

    import numpy

    return {**adapter.environment(), "python": platform.python_version(), "platform": platform.platform(),
            "machine": platform.machine(), "numpy": numpy.__version__}


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> Any:
    kit = parent.config.stash.get(SESSION, None)
    if kit is None or file_path.suffix not in (".yaml", ".yml"):
        return None
    from conformance.collect import VectorFile

    try:  # files outside the rootdir (an installed kit, --vectors elsewhere) still get readable node ids
        nodeid = file_path.relative_to(parent.config.rootpath).as_posix()
    except ValueError:
        nodeid = f"{file_path.parent.name}/{file_path.name}"
    return VectorFile.from_parent(parent, path=file_path, nodeid=nodeid)


def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> Any:
    """The kit's own check modules get node ids like ``suite/test_api.py::...`` wherever the kit is installed."""
    if module_path.parent == SUITE_DIR and parent.config.stash.get(SESSION, None) is not None:
        return pytest.Module.from_parent(parent, path=module_path, nodeid=f"suite/{module_path.name}")
    return None


def _result(item: pytest.Item) -> Any:
    """The item's result record (``Result.of_item``)."""
    from conformance.report.record import Result

    return Result.of_item(item)


def _record(item: pytest.Item) -> dict:
    """The vector record behind an item, or {} for an item without one."""
    return getattr(getattr(item, "pending", None), "record", {})


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
    kit = config.stash.get(SESSION, None)
    if kit is None:
        return
    limit = config.getoption(SCALE)
    large = [i for i in items if "large" in _record(i).get("flags", ())
             and (limit is None or sum(math.prod(v["shape"]) for v in _record(i)["variables"].values()) > limit)]
    other_level = [i for i in items if _result(i).level not in (None, *kit.levels)]
    for item in other_level:
        level = _result(item).level
        kit.deselected_levels[level] = kit.deselected_levels.get(level, 0) + 1
    dropped = set(large) | set(other_level)
    if dropped:
        config.hook.pytest_deselected(items=[i for i in items if i in dropped])
        items[:] = [i for i in items if i not in dropped]
    kit.families = {_result(i).family for i in items}
    if kit.expectations is None:
        return
    for item in items:
        entry = kit.expectations.lookup(conformance_id(item), getattr(item, "dtype", None))
        if entry is not None:
            item.add_marker(pytest.mark.xfail(reason=f"{entry.clause}: {entry.reason}", strict=True, raises=Exception))
    for entry in kit.stale_expectations():
        warnings.warn(pytest.PytestWarning(f"{kit.expectations.label}: entry '{entry.id}' matches no collected item"))


def pytest_report_header(config: pytest.Config) -> list[str]:
    kit = config.stash.get(SESSION, None)
    if kit is None:
        return []
    from conformance.report.terminal import header_lines

    return [f"adam-conformance: {line}" for line in header_lines(kit.meta())]


def _candidate_fixture(request: pytest.FixtureRequest) -> Any:
    """The candidate fixture ``request`` asks for (``isolation.fixture``), skipped as unsupported when the adapter
    lacks that API."""
    from conformance.isolation import fixture
    from conformance.errors import Unsupported

    kit = request.config.stash.get(SESSION, None)
    if kit is None:
        pytest.skip("no --candidate given")
    try:
        return fixture(request.fixturename, kit.adapter, kit.profile)
    except Unsupported as exc:
        _result(request.node).unsupported = str(exc)
        pytest.skip(f"unsupported: {exc}")


@pytest.fixture
def adam_api(request: pytest.FixtureRequest) -> Any:
    """Helpers to drive the candidate's optimizer_v2 API (skipped as unsupported when it has none)."""
    return _candidate_fixture(request)


@pytest.fixture
def adam_aliases(request: pytest.FixtureRequest) -> tuple[Any, dict[str, Any]]:
    """The candidate and what the page's names are in the installed TensorFlow (unsupported outside TensorFlow)."""
    return _candidate_fixture(request)


@pytest.fixture
def adam_oracle(request: pytest.FixtureRequest) -> Any:
    """The spec's NumPy port (``reference.Adam``), with the deviations of the declared profile composed in: what the
    API checks that compare numbers expect."""
    return _candidate_fixture(request)


@pytest.fixture
def property_env(request: pytest.FixtureRequest) -> Any:
    """What the property checks share (``conformance.property.Environment``)."""
    kit = request.config.stash.get(SESSION, None)
    if kit is None:
        pytest.skip("no --candidate given")
    from conformance.property import Environment

    return Environment(kit, request.config, request.node.name)


@pytest.hookimpl(tryfirst=True, specname="pytest_pyfunc_call")
def pytest_pyfunc_call_isolated(pyfuncitem: pytest.Function) -> Any:
    """Under ``--isolate`` a kit check runs in the child (``Isolation.check``); what it raised there is raised here,
    inside the wrapper below, so that the verdicts are those of a run in process.  A crash fails the check alone."""
    kit = pyfuncitem.config.stash.get(SESSION, None)
    if kit is None or kit.isolation is None or pyfuncitem.path.parent != SUITE_DIR:
        return None
    from conformance.isolation import CANDIDATE_FIXTURES, CandidateCrash

    names = pyfuncitem._fixtureinfo.argnames
    fixtures = [n for n in names if n in CANDIDATE_FIXTURES]
    context = {"spec": kit.spec, "profile": kit.profile, "name": pyfuncitem.name,
               "avoid": dict(kit.expectations.avoid) if kit.expectations else {},
               "options": {o: pyfuncitem.config.getoption(o, None) for o in ("hypothesis_seed", EXPORT, EXAMPLES)}}
    result = _result(pyfuncitem)
    try:
        raised, tracker = kit.isolation.check(f"conformance.suite.{pyfuncitem.path.stem}", pyfuncitem.originalname,
                                              {n: pyfuncitem.funcargs[n] for n in names if n not in fixtures},
                                              fixtures, context, result.vector)
    except CandidateCrash as exc:
        result.message = str(exc)
    if result.message:  # failed outside the except block: one line, without the crash as its context
        pytest.fail(result.message, pytrace=False)
    if tracker is not None:  # the property's examples, for its record (pytest_runtest_makereport)
        kit.trackers[pyfuncitem.name] = tracker
    if raised is not None:
        raise raised
    return True


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Any:
    """In the kit's checks, what the candidate does not implement makes the check unsupported, not failed."""
    if pyfuncitem.config.stash.get(SESSION, None) is None or pyfuncitem.path.parent != SUITE_DIR:
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
    kit = item.config.stash.get(SESSION, None)
    if kit is None or (report.when != "call" and report.passed) or report.when == "teardown":
        return report
    result = _result(item)
    result.take_report(report, kit.device, kit.trackers.get(item.name) if result.family == "property" else None)
    report.user_properties.append(("adam_conformance", result.as_dict()))
    return report


class SelectedVectors:
    """Verifies the vectors of the selected items once every deselection is done (-k and -m included): the
    oracle's re-derivation of a vector is paid only when an item of it is to run."""

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        from conformance.collect import verify_selected

        verify_selected(items)


class ResultCollector:
    """Gathers the result records that ride on the reports (so they also arrive from xdist workers), and writes each
    to ``stream`` (JSON lines, flushed per record) as it comes, so that a run that dies keeps what it finished."""

    def __init__(self, kit: Session, stream: str | None = None) -> None:
        self.kit = kit
        self.path = stream
        if stream:
            Path(stream).parent.mkdir(parents=True, exist_ok=True)
        self.file = open(stream, "w", encoding="utf-8") if stream else None  # noqa: SIM115 - open for the run

    def close(self, remove: bool) -> None:
        """Close the stream; ``remove`` it once the whole document holds its records."""
        if self.file is not None:
            self.file.close()
            self.file = None
            if remove:
                Path(self.path).unlink(missing_ok=True)

    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        self.kit.running = nodeid

    def pytest_runtest_logfinish(self, nodeid: str, location: Any) -> None:
        self.kit.running = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        records = [value for key, value in report.user_properties if key == "adam_conformance"]
        if not records and report.failed and "crashed" in str(report.longrepr):
            # pytest-xdist reports a worker that died with the item it was running, and no record of ours.
            from conformance.report.record import Result

            records = [Result.for_lost_item(report).as_dict()]
        self.kit.results += records
        if self.file is not None and records:
            import json

            for record in records:
                self.file.write(json.dumps(record, sort_keys=True, default=str) + "\n")
            self.file.flush()


@pytest.hookimpl(wrapper=True)
def pytest_collection(session: pytest.Session) -> Any:
    kit = session.config.stash.get(SESSION, None)
    if kit is not None:
        kit.started = time.perf_counter()
    try:
        return (yield)
    finally:
        if kit is not None:
            kit.collected = time.perf_counter()


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session: pytest.Session) -> Any:
    try:
        return (yield)
    finally:
        kit = session.config.stash.get(SESSION, None)
        if kit is not None:
            kit.finished = time.perf_counter()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    kit = session.config.stash.get(SESSION, None)
    if kit is None:
        return
    if kit.verified is not None and getattr(session.config, "cache", None) is not None:
        kit.remember_verified()
        # Added to what is there: pytest-xdist's workers and their controller each write the key.
        known = set(session.config.cache.get(kit.cache_key, []))
        session.config.cache.set(kit.cache_key, sorted(known | kit.verified))
    if hasattr(session.config, "workerinput"):
        return
    if kit.executed() == 0 and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED  # zero items compared is an error, never a pass
    json_path, html_path = session.config.getoption(JSON), session.config.getoption(HTML)
    if json_path or html_path:
        from conformance.report import html
        from conformance.report.document import document, write_json

        doc = document(kit.meta(), kit.results)
        if json_path:
            write_json(json_path, doc)
        if html_path:
            html.write(html_path, doc)
    collector = session.config.pluginmanager.get_plugin("adam-conformance-results")
    if collector is not None:
        collector.close(remove=True)  # PATH was written: it holds every record (had writing it raised, this would keep them)


def pytest_unconfigure(config: pytest.Config) -> None:
    """The candidate's processes end with the session: a distributed mode's ranks, killed by their ids."""
    kit = config.stash.get(SESSION, None)
    if kit is not None:
        getattr(kit.adapter, "close", lambda: None)()
        if kit.isolation is not None:
            kit.isolation.close()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    kit = config.stash.get(SESSION, None)
    if kit is None or hasattr(config, "workerinput"):
        return
    from conformance.report.terminal import terminal_lines

    terminalreporter.section("Adam conformance")
    avoided = kit.expectations.avoid if kit.expectations else {}
    stale = [(e.id, e.clause) for e in kit.stale_expectations()]
    for line, red in terminal_lines(kit.meta(), kit.results, avoided, stale, executed=kit.executed()):
        terminalreporter.write_line(line, red=red)
    if exitstatus == pytest.ExitCode.INTERRUPTED and kit.running:
        terminalreporter.write_line(f"ERROR: the run was cut short while {kit.running} was running; the items after "
                                    "it did not run (--isolate keeps a crashing candidate to one item)", red=True)
