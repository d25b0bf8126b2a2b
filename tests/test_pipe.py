"""Process candidates over the pipe protocol: the oracle through the pipe, hostile ports, usage errors."""

from __future__ import annotations

import shlex
import subprocess
import sys

import pytest

from tests.helpers import ROOT, need

ORACLE = f"{shlex.quote(sys.executable)} -m conformance.pipe_port"
HOSTILE = f"{shlex.quote(sys.executable)} tests/hostile_port.py"
PICK = "sparse/duplicate-pair or dense/basic"  # two sparse items (the faults fire on them), two dense ones


@pytest.fixture
def run(pipe_run):
    return pipe_run


def _vector_items(doc: dict) -> dict[str, dict]:
    return {f"{r['vector']}[{r['dtype']}]": r for r in doc["results"] if r["family"] != "api"}


#: The items a process candidate cannot run: the pipe carries contiguous tensors only (Feature.NON_CONTIGUOUS), and
#: a session has one dtype (Feature.MIXED_DTYPES).
STRIDED = {"kernels/strided[float32]", "kernels/strided[float64]", "kernels/strided-half[float16]",
           "kernels/strided-half[bfloat16]", "kernels/mixed-dtypes[mixed]"}


@pytest.mark.slow  # two whole runs, one of every item through a process
def test_the_oracle_through_the_pipe_gives_the_in_process_verdicts_and_numbers(run):
    piped, pdoc = run(f"--candidate-command={ORACLE}")
    direct, ddoc = run("--candidate=reference:Adam")
    assert piped.ret == direct.ret == 0
    p, d = _vector_items(pdoc), _vector_items(ddoc)
    assert p.keys() == d.keys()
    assert {i for i, r in p.items() if r["verdict"] == "unsupported"} == STRIDED  # a process gets contiguous bytes
    for item in set(p) - STRIDED:
        assert p[item]["verdict"] == d[item]["verdict"], item
        for mode, out in d[item]["modes"].items():
            assert p[item]["modes"][mode]["worst"] == out["worst"], (item, mode)
    api = {r["vector"]: r["verdict"] for r in pdoc["results"] if r["family"] == "api"}
    # The optimizer_v2 API checks are unsupported for a process (P-9); P-5's all-null apply is checked through the pipe.
    assert api.pop("api/test_all_null_apply_is_an_error") == "pass" and set(api.values()) == {"unsupported"}
    assert pdoc["adapter"] == "pipe" and pdoc["versions"] == {"port": "conformance.pipe_port reference:Adam 1"}
    piped.stdout.fnmatch_lines(["adam-conformance: translation: callable and schedule liveness * not checked"])


def test_a_wrong_port_is_diagnosed_through_the_pipe(run):
    result, doc = run(f"--candidate-command={ORACLE} reference.variants:Algorithm1Epsilon", "-k", "discriminating")
    assert result.ret == 1
    failing = [r for r in _vector_items(doc).values() if r["verdict"] == "fail"]
    assert failing and {r["diagnosis"]["variant"] for r in failing} == {"Algorithm1Epsilon"}


@pytest.mark.parametrize("fault,message", [
    ("crash", "the port exited with status 3 during 'apply' (session *) (stderr: about to misbehave: crash)"),
    ("garbage", "the port answered 'apply' (session *) with a line that is not JSON (stdout carries responses only; *"),
    ("stdout-noise", "the port answered 'apply' (session *) with a line that is not JSON *'debug: applying sparse*"),
    ("schema", "the port's response to 'apply' (session *) violates spec/pipe.schema.json at (the response): "
               "Additional properties are not allowed ('extra' was unexpected)*"),
    ("wrong-id", "the port answered 'apply' (session *) with id *, expected *"),
    ("error", "the candidate raised PortError at step 1: sparse rows out of range"),
])
def test_a_port_that_breaks_the_protocol_fails_that_item_and_the_rest_runs(run, fault, message):
    result, doc = run(f"--candidate-command={HOSTILE} --fault={fault}", "-k", PICK)
    assert result.ret == 1
    items = _vector_items(doc)
    assert {i for i, r in items.items() if r["verdict"] == "pass"} == {"dense/basic[float32]", "dense/basic[float64]"}
    assert {i for i, r in items.items() if r["verdict"] == "fail"} == {"sparse/duplicate-pair[float32]",
                                                                     "sparse/duplicate-pair[float64]"}
    result.stdout.fnmatch_lines([f"FAIL: sparse/duplicate-pair [[]float32[]] from step 1: *{message}"])
    # The port's own stderr (a killed Python port may print one) is shown apart; the kit prints none.
    assert not [line for line in result.stdout.lines if "Traceback" in line and not line.startswith("[port stderr]")]


@pytest.mark.slow  # waits out its timeouts
def test_a_hung_port_is_killed_and_restarted(run):
    # The port hangs for good on sparse items, so they fail whatever the limit; 5 s leaves the dense ones, answered
    # in milliseconds, room on a loaded machine.
    result, doc = run(f"--candidate-command={HOSTILE} --fault=hang", "--conformance-timeout=5", "-k", PICK,
                      "--conformance-diagnosis=off")
    assert result.ret == 1
    assert doc["summary"] == {"pass": 2, "fail": 2}
    failed = [r["message"] for r in doc["results"] if r["verdict"] == "fail"]
    assert len(failed) == 2 and all("within 5 s (--conformance-timeout)" in m for m in failed), failed
    result.stdout.fnmatch_lines(["*did not *within 5 s (--conformance-timeout)*"])


def test_an_unsupported_answer_is_unsupported_with_the_ports_reason(run):
    result, doc = run(f"--candidate-command={HOSTILE} --fault=unsupported", "-k", PICK)
    assert result.ret == 0
    assert {r["unsupported"] for r in _vector_items(doc).values() if r["verdict"] == "unsupported"} == {
        "not implemented by the candidate: NotImplementedError: no sparse kernel"}


@pytest.mark.parametrize("command,message", [
    ("no-such-program --flag", "no such program 'no-such-program'"),
    (f"{sys.executable} -c 'print(1)'", "PipeError: the port answered 'hello' with JSON that is not an object: *"),
    (f"{sys.executable} -c 'import sys; sys.exit(4)'", "PipeError: the port exited with status 4 during 'hello'*"),
    ("'unbalanced", "cannot split it as a shell would: *"),
])
def test_a_port_that_cannot_start_is_a_usage_error(run, command, message):
    result, _ = run(f"--candidate-command={command}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --candidate-command=*: {message}"])


def test_one_candidate_at_a_time(run):
    result, _ = run("--candidate=reference:Adam", f"--candidate-command={ORACLE}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --candidate and --candidate-command name two candidates; give one"])


def _js() -> str:
    return f"{need('node')} ports/js/adam.js"


@pytest.fixture(scope="module")
def c_port(tmp_path_factory) -> str:
    binary = tmp_path_factory.mktemp("c") / "adam"
    subprocess.run([need("cc"), "-O2", "-std=c99", "-Wall", "-Wextra", "-Werror", "-o", str(binary), str(ROOT / "ports/c/adam.c"),
                    "-lm"], check=True)
    return str(binary)


@pytest.mark.slow  # a whole run of each port
@pytest.mark.parametrize("port", ["js", "c"])
def test_the_worked_ports_conform(run, request, port):
    command = _js() if port == "js" else request.getfixturevalue("c_port")
    result, doc = run(f"--candidate-command={command}")
    assert result.ret == 0, result.stdout.str()[-2000:]
    items = _vector_items(doc)
    assert {r["verdict"] for r in items.values()} <= {"pass", "unsupported"}
    ran = {i for i, r in items.items() if r["verdict"] == "pass"}
    # Every vector in float32 and float64 runs and passes, but the strided ones a byte stream cannot express and the
    # mixed one a session of one dtype cannot; the half-precision ones only where the port declares them.
    wide = ("[float32]", "[float64]", "[mixed]")
    assert {i for i in items if i.endswith(wide)} - ran == {i for i in STRIDED if i.endswith(wide)}


@pytest.mark.parametrize("port", ["js", "c"])
@pytest.mark.slow  # a whole run of each port built with a planted defect
def test_the_worked_ports_wrong_variant_is_caught_and_named(run, request, port):
    command = _js() if port == "js" else request.getfixturevalue("c_port")
    pick = ("-k", "discriminating or dense")
    result, doc = run(f"--candidate-command={command} --variant=algorithm1-epsilon", *pick)
    assert result.ret == 1
    _, in_process = run("--candidate=reference.variants:Algorithm1Epsilon", *pick)
    failing = {i: r for i, r in _vector_items(doc).items() if r["verdict"] == "fail"}
    assert set(failing) == {i for i, r in _vector_items(in_process).items() if r["verdict"] == "fail"}
    assert {r["diagnosis"]["variant"] for r in failing.values()} == {"Algorithm1Epsilon"}
