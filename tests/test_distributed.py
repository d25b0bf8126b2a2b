"""The kit's distributed machinery without a framework: each step's gradient divided among ranks
(``conformance.adapters.distributed``) and the rank processes (``conformance.adapters.ranks``)."""

from __future__ import annotations

import math
import os
import time
from fractions import Fraction

import numpy as np
import pytest

from conformance.adapters.distributed import Combination, same_bits, split, split_array
from conformance.adapters.ranks import Placement, RankError, RankPool
from conformance.dtypes import NUMPY_DTYPES
from conformance.errors import Unsupported
from reference.adam import IndexedSlices
from tests.helpers import ROOT, need

DTYPES = ("float16", "bfloat16", "float32", "float64")


def _values(dtype: str, n: int = 4000, seed: int = 0) -> np.ndarray:
    """Gradients over many binades, with zeros of both signs, subnormals and the dtype's extremes."""
    rng = np.random.default_rng(seed)
    info = np.finfo(NUMPY_DTYPES[dtype])
    x = rng.standard_normal(n) * 10.0 ** rng.integers(-6, 5, n)
    x[:6] = [0.0, -0.0, float(info.smallest_subnormal), -3 * float(info.smallest_subnormal), float(info.max),
             -float(info.tiny)]
    return x.astype(NUMPY_DTYPES[dtype])


def _orders(parts: list[np.ndarray], comb: Combination) -> list[np.ndarray]:
    """The combination in rank order, in reverse and pairwise (a tree): an exact split gives the same in each."""
    dt = parts[0].dtype
    scaled = [p / dt.type(comb.pre) for p in parts]
    sums = [sum(scaled[1:], scaled[0]), sum(scaled[-2::-1], scaled[-1])]
    level = scaled
    while len(level) > 1:
        level = [level[i] + level[i + 1] if i + 1 < len(level) else level[i] for i in range(0, len(level), 2)]
    sums.append(level[0])
    return [s / dt.type(comb.post) for s in sums]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
@pytest.mark.parametrize("how", ["even", "one-rank"])
@pytest.mark.parametrize("averaged", [False, True])
def test_the_combination_gives_the_gradient_bit_for_bit(dtype, world_size, how, averaged):
    g = _values(dtype)
    comb = Combination.averaged(world_size) if averaged else Combination.summed()
    if averaged and world_size > 1:  # rank 0's whole share, N * G, must be exact (test_what_no_split_gives...)
        keep = [x for x in g.tolist() if math.isfinite(x * world_size) and float(np.asarray(x * world_size).astype(
            g.dtype)) == Fraction(x) * world_size]
        g = np.array(keep, dtype=g.dtype)
    parts, fell = split_array(g, world_size, how, comb, "a")
    assert len(parts) == world_size and all(p.dtype == g.dtype for p in parts)
    for total in _orders(parts, comb):
        assert np.all(same_bits(total, g))
    if how == "one-rank":
        assert all(np.all(same_bits(p, np.full_like(g, -0.0))) for p in parts[1:])
    elif world_size in (1, 2):
        # Two ranks: only a subnormal (half of it may round) falls back.
        info = np.finfo(g.dtype)
        wide = np.abs(g.astype(np.float64))
        assert fell <= np.count_nonzero((wide > 0) & (wide < float(info.tiny)))


def test_an_even_split_shares_evenly_where_it_is_exact():
    g = np.array([1.0, -0.5, 3.0, -0.0], dtype=np.float32)
    parts, fell = split_array(g, 2, "even", Combination.summed(), "a")
    assert fell == 0 and np.array_equal(parts[0], g / 2) and np.array_equal(parts[1], g / 2)
    parts, fell = split_array(g, 2, "even", Combination.averaged(2), "a")
    assert fell == 0 and np.array_equal(parts[0], g) and np.array_equal(parts[1], g)


def test_three_ranks_fall_back_to_rank_0_where_a_third_rounds():
    g = np.array([3.0, 1.0, 0.1], dtype=np.float32)  # 3/3 and 1/3 * 3 ... only the first is an exact third
    parts, fell = split_array(g, 3, "even", Combination.summed(), "a")
    assert parts[0][0] == parts[1][0] == parts[2][0] == 1.0
    assert fell == 2 and parts[0][2] == g[2] and np.signbit(parts[1][2]) and parts[1][2] == 0.0


def test_a_subnormal_half_falls_back():
    tiny = np.array([np.finfo(np.float32).smallest_subnormal], dtype=np.float32)
    parts, fell = split_array(tiny, 2, "even", Combination.summed(), "a")
    assert fell == 1 and parts[0][0] == tiny[0] and parts[1][0] == 0.0


def test_float64_multiples_are_checked_by_their_bits():
    g = np.array([3.0, 3.0 * (1 + 2.0**-52)], dtype=np.float64)
    parts, fell = split_array(g, 3, "even", Combination.summed(), "a")
    assert parts[0][0] == 1.0 and fell == 1
    assert all(np.all(same_bits(t, g)) for t in _orders(parts, Combination.summed()))


def test_what_no_split_gives_exactly_is_unsupported_with_the_element():
    g = np.array([1.0, 65504.0], dtype=np.float16)  # float16's largest: twice it overflows
    with pytest.raises(Unsupported, match=r"^w: the gradient .*65504.* at \(1,\) cannot be divided among 2 ranks .*float16"):
        split_array(g, 2, "one-rank", Combination.averaged(2), "w")
    parts, _ = split_array(g, 2, "even", Combination.averaged(2), "w")  # G per rank: G / 2 + G / 2 is exact
    assert np.array_equal(parts[0], g)


def test_sparse_gradients_are_divided_by_rows():
    values = np.arange(10.0).reshape(5, 2)
    g = IndexedSlices(values, np.array([4, 0, 4, 2, 1]), (6, 2))
    out = split({"e": g, "n": None}, {"e": "float32", "n": "float32"}, 2, "even", Combination.summed())
    first, second = out.parts[0]["e"], out.parts[1]["e"]
    assert list(first.indices) + list(second.indices) == [4, 0, 4, 2, 1]
    assert np.array_equal(np.concatenate([first.values, second.values]), values.astype(np.float32))
    assert out.parts[0]["n"] is None and out.parts[1]["n"] is None
    alone = split({"e": g}, {"e": "float32"}, 2, "one-rank", Combination.averaged(2))
    assert len(alone.parts[1]["e"].indices) == 0 and np.array_equal(alone.parts[0]["e"].values, 2 * values)


def test_a_step_is_split_in_each_variables_dtype_with_notes():
    grads = {"a": np.array([0.1, 3.0]), "b": np.array([2.0**-149])}  # float32's smallest subnormal has no half
    out = split(grads, {"a": "float32", "b": "float32"}, 2, "even", Combination.summed())
    assert out.notes == ["b: 1 element(s) given whole to rank 0 (an even share is not exact in float32)"]
    with pytest.raises(ValueError, match="unknown split 'halves'"):
        split(grads, {"a": "float32", "b": "float32"}, 2, "halves", Combination.summed())


PROGRAM = "tests.rank_programs:Toy"


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_pool_answers_in_rank_order_and_is_kept_across_requests():
    pool = RankPool(PROGRAM, 3, {"greeting": "hi"})
    try:
        assert pool.ask("hello") == ["hi 0/3", "hi 1/3", "hi 2/3"]
        pids = pool.pids
        assert pool.ask("echo", [(1,), (2,), (3,)]) == [1, 2, 3] and pool.pids == pids
    finally:
        pool.stop()
    assert pool.pids == [] and all(_gone(p) for p in pids)


@pytest.mark.slow  # ranks killed and started again: ten seconds
def test_a_rank_that_dies_or_raises_kills_the_pool_and_the_next_request_starts_another():
    pool = RankPool(PROGRAM, 2, {})
    try:
        first = list(pool.ask("pids"))
        with pytest.raises(RankError, match=r"^rank 1 died: SIGKILL \(while die; every rank was killed"):
            pool.ask("die", [(False,), (True,)])
        assert all(_gone(p) for p in first)
        with pytest.raises(RankError, match=r"^rank 0: ValueError: bad input"):
            pool.ask("fail", [(True,), (False,)])
        with pytest.raises(Unsupported, match="cannot express it"):  # every rank answered: the pool is kept
            pool.ask("unsupported")
        second = pool.pids
        assert pool.ask("pids") == second and not set(second) & set(first)
    finally:
        pool.stop()


def test_a_rank_that_hangs_is_killed_after_the_timeout():
    pool = RankPool(PROGRAM, 2, {}, timeout=2.0)
    try:
        pids = pool.ask("pids")
        start = time.monotonic()
        with pytest.raises(RankError, match=r"^rank\(s\) 1 did not answer 'hang' within 2 s"):
            pool.ask("hang", [(False,), (True,)])
        assert time.monotonic() - start < 10 and all(_gone(p) for p in pids)
    finally:
        pool.stop()


def test_a_distributed_row_is_labelled_with_its_ranks_and_split():
    from conformance.report.tables import _label
    from conformance.report.terminal import header_lines

    doc = {"candidate": "torch.optim:Adam", "execution": "fsdp2-fused", "world_size": 4, "split": "one-rank",
           "declared_profile": ["Algorithm1Epsilon"]}
    assert _label(doc) == "torch.optim:Adam fsdp2-fused (4 ranks, one-rank split) (profile)"
    assert _label({"candidate": "torch.optim:Adam", "execution": "fused"}) == "torch.optim:Adam fused"
    meta = {**doc, "adapter": "torch", "raw": False, "versions": {}, "device": "cpu", "mode": "both",
            "timeout_s": 120.0, "environment": {"flush_to_zero": {}}, "levels": ["core"], "expectations": None,
            "translations": [], "capabilities": {"absent": {}, "not_exposed": []},
            "vector_set": {"spec_version": "1", "vectors": [], "sha256": "0"}}
    assert "; 4 ranks, one-rank split;" in header_lines(meta)[1]


@pytest.mark.slow  # a whole run of the suite in a subprocess (about a minute)
def test_the_deepspeed_modes_are_unsupported_with_the_reason_where_deepspeed_is_absent(tmp_path):
    """DeepSpeed is an optional extra: without it every item of its three modes is unsupported with one line saying
    how to get it, and no rank process starts (a whole run for ZeRO-2; the adapter alone for each stage)."""
    import importlib.util
    import json
    import subprocess
    import sys

    from tests.helpers import ROOT, need

    need("torch")
    if importlib.util.find_spec("deepspeed") is not None:
        pytest.skip("deepspeed is installed here: this checks the modes without it")
    reason = "deepspeed is not installed: pip install deepspeed; it compiles a C++ op on first use"
    log, out = tmp_path / "ranks.log", tmp_path / "r.json"
    env = {**os.environ, "ADAM_CONFORMANCE_RANK_LOG": str(log), "PYTHONPATH": str(ROOT)}
    script = ("import torch\n"
              "from conformance.adapters.torch import TorchAdapter\n"
              "from conformance.errors import Unsupported\n"
              "for stage in (1, 2, 3):\n"
              "    a = TorchAdapter(torch.optim.Adam, execution=f'deepspeed-zero{stage}')\n"
              "    assert a.distributed and a.twin().execution == 'eager'\n"
              "    print(a.unsupported(None, 'float32'))\n"
              "    try:\n"
              "        a.start(None)\n"
              "    except Unsupported as exc:\n"
              "        print(exc)\n")
    lines = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=300)
    assert lines.stdout.splitlines() == [reason] * 6, lines.stderr[-3000:]
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "-q",
                           "--candidate=torch.optim:Adam", "--execution=deepspeed-zero2",
                           "-k", "dense/basic or sparse/duplicate-pair", f"--conformance-json={out}",
                           "--rootdir", str(ROOT)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    doc = json.loads(out.read_text(encoding="utf-8"))
    records = doc["results"]
    assert doc["execution"] == "deepspeed-zero2" and len(records) >= 4, proc.stdout[-3000:]
    assert {r["verdict"] for r in records} == {"unsupported"}, proc.stdout[-3000:]
    assert {r["message"] for r in records} == {reason}
    assert not log.exists() or log.read_text(encoding="utf-8") == ""


def test_a_launcher_starts_each_rank_on_its_host_over_its_standard_streams():
    """--rank-launcher: each rank started by the command with {host} (here ``env``, which runs it on this machine),
    speaking to the kit over the launcher's standard input and output; the pool's addresses name the ranks' hosts."""
    launcher = "env ADAM_TEST_HOST={host}"
    pool = RankPool(PROGRAM, 2, {"greeting": "hi"}, ports_per_pool=2,
                    placement=Placement(("127.0.0.1", "localhost"), launcher))
    try:
        assert pool.ask("hello") == ["hi 0/2", "hi 1/2"]
        assert [[a.split(":")[0] for a in addresses] for addresses in pool.ask("addresses")] == [["127.0.0.1", "localhost"]] * 2
        assert pool.ask("host") == ["127.0.0.1", "localhost"]  # each rank's launcher was given its own host
        pids = pool.ask("pids")
    finally:
        pool.stop()
    assert pool.pids == [] and all(_gone(p) for p in pids)


@pytest.mark.parametrize("args,line", [
    (["--execution=eager", "--rank-hosts=127.0.0.1"], "--rank-hosts: applies to the modes whose ranks are processes *"
                                                      "--execution=eager runs in the kit's process"),
    (["--execution=ddp", "--rank-hosts=10.0.0.1"], "--rank-hosts=10.0.0.1: the kit starts its ranks here; another host "
                                                   "needs --rank-launcher (e.g. 'ssh {host}')"),
    (["--execution=ddp", "--rank-hosts=a,b,c"], "--rank-hosts=a,b,c: give one host, or one per rank (2)"),
    (["--execution=ddp", "--rank-hosts=a,b", "--rank-launcher=ssh"], "--rank-launcher=ssh: the command must say where, "
                                                                     "with {host}"),
])
def test_rank_placement_usage_errors_are_one_line(pytester, args, line):
    need("torch")
    pytester.syspathinsert(ROOT)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--candidate=torch.optim:Adam", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{line}"])
    assert "Traceback" not in result.stderr.str()
