"""The rank processes of a distributed execution mode: started, driven, timed and ended by the kit.

A ``RankPool`` is ``world_size`` processes on this machine, each running one rank of the engine (torch's process
group over gloo, TensorFlow's MultiWorkerMirroredStrategy), talking to each other on 127.0.0.1 through free ports
and to the kit through a pipe each.  The pool is kept across items: an engine that allows one strategy or process
group per process (TensorFlow) sets it up once, and a suite pays the processes' start-up once, not per item.

Every request goes to every rank at once (the engines' collectives need them all) and waits for every reply.  A
rank that raises, dies or hangs breaks the pool: the others are waiting in a collective that will never finish,
so every rank is killed by its process id and the next request starts a fresh pool.  The request fails with the
cause ("rank 1 died: SIGSEGV", "rank 0: ValueError: ..."); what the candidate does not implement or cannot express
(``NotImplementedError``, ``Unsupported``) comes back as itself.

No rank outlives the kit: ``stop`` kills them (the adapter's ``close`` and ``interrupt``, the plugin at the end of
the session, an exit handler), and each rank ends itself when its parent is gone (a watchdog thread), for a kit
killed from outside.  With ``ADAM_CONFORMANCE_RANK_LOG=FILE`` each rank appends ``pid rank`` to FILE when it starts.

``Placement`` (``--rank-hosts``, ``--rank-launcher``) puts the ranks elsewhere: each rank is started by a launcher
command (``ssh {host}``, say) and speaks to the kit over the launcher's standard input and output, and the engines
meet at the hosts' addresses instead of 127.0.0.1.  The kit then ends a rank by ending its launcher (by process id);
the rank's watchdog ends it when its parent (the launcher's process on that host) is gone.
"""

from __future__ import annotations

import atexit
import itertools
import os
import pickle
import pkgutil
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

import numpy as np

from conformance.errors import Unsupported, exit_cause, first_line

#: Seconds a pool may take to start (importing a framework, joining the process group), whatever ``timeout`` says.
START = 180.0
#: Seconds the other ranks get to answer once one rank has failed, before the pool is killed.
GRACE = 5.0
RANK_LOG = "ADAM_CONFORMANCE_RANK_LOG"
_POOLS: set = set()  # the pools alive in this process, for the exit handler
_KEYS = itertools.count(1)  # sessions, as the ranks know them
#: Sessions a rank keeps (an item's lanes, in trajectory and single-step mode); older ones are dropped.
KEPT = 4


@dataclass(frozen=True)
class Placement:
    """Where the ranks run: ``hosts`` (one per rank, or one for all: each rank's address for the engine's rendezvous)
    and ``launcher``, a command with ``{host}`` that starts a program on that host (the rank's command is appended;
    None: a child process of the kit)."""

    hosts: tuple[str, ...] = ("127.0.0.1",)
    launcher: str | None = None

    def host(self, rank: int) -> str:
        return self.hosts[rank] if len(self.hosts) > 1 else self.hosts[0]


class RankError(RuntimeError):
    """A rank raised, died or did not answer: the pool was killed."""


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports free on 127.0.0.1 just now (held together while chosen, so that they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()



def _watch_parent(parent: int) -> None:
    """End this rank when the process that started it is gone (killed, so that it could not stop the pool)."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(3)


def _rank_main() -> None:
    """One rank (``python -c``, started by ``RankPool``): read its settings from the kit, build the engine's rank
    program (``program(rank, world_size, addresses, setup)``), then answer each request ``(method, args)`` with
    ``(kind, value)``: ``ok`` and the method's result, or what it raised.  Its pipes to the kit are the file
    descriptors in its arguments, or (``stdio``, started by a launcher) its standard input and output."""
    if sys.argv[1] == "stdio":
        conn = Connection(os.dup(0), readable=True, writable=False)
        out = Connection(os.dup(1), readable=False, writable=True)
    else:
        conn = Connection(int(sys.argv[1]), readable=True, writable=False)
        out = Connection(int(sys.argv[2]), readable=False, writable=True)
    os.dup2(2, 1)  # a framework's prints go to stderr, never into the pipe
    program, rank, world_size, addresses, setup = conn.recv()
    # The process that started this rank: the kit, or the launcher's process on this host.
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True, name="adam-conformance-watchdog").start()
    if os.environ.get(RANK_LOG):
        with open(os.environ[RANK_LOG], "a", encoding="utf-8") as log:
            log.write(f"{os.getpid()} {rank}\n")
    try:
        target = pkgutil.resolve_name(program)(rank, world_size, addresses, setup)
        out.send(("ok", None))
    except Exception as exc:  # noqa: BLE001 - reported to the kit; the rank ends
        out.send(("error", f"{type(exc).__name__}: {first_line(exc)}\n{traceback.format_exc()}"))
        return
    while True:
        try:
            method, args = conn.recv()
        except EOFError:
            return
        try:
            reply = ("ok", getattr(target, method)(*args))
        except Unsupported as exc:
            reply = ("unsupported", str(exc))
        except NotImplementedError as exc:
            reply = ("not implemented", str(exc))
        except Exception as exc:  # noqa: BLE001 - the candidate's or the engine's, reported with the rank
            reply = ("error", f"{type(exc).__name__}: {first_line(exc)}")
        out.send(reply)


class RankPool:
    """``world_size`` rank processes running ``program`` ("module:function", called in each rank as
    ``program(rank, world_size, addresses, setup)`` and returning the object whose methods the requests call).
    ``addresses``: ``ports_per_pool`` "host:port" strings for the engine's rendezvous, the i-th on rank i's host."""

    def __init__(self, program: str, world_size: int, setup: dict, ports_per_pool: int = 1,
                 env: dict[str, str] | None = None, timeout: float | None = None,
                 placement: Placement | None = None) -> None:
        self.program, self.world_size, self.setup = program, world_size, setup
        self.ports_per_pool, self.env, self.timeout = ports_per_pool, env or {}, timeout
        self.placement = placement or Placement()
        self.procs: list[subprocess.Popen] = []
        self.conns: list[tuple[Connection, Connection]] = []  # (to the rank, from the rank)
        self.lock = threading.Lock()

    @property
    def pids(self) -> list[int]:
        """The ranks' process ids, in rank order (empty while no pool runs)."""
        return [p.pid for p in self.procs]

    def _start(self) -> None:
        # Plain processes, not multiprocessing's: --isolate's child is a daemon process, which may not have any.
        # Ports free here; with other hosts, the launcher's hosts are assumed to have them free too.
        place = self.placement
        addresses = [f"{place.host(i)}:{port}" for i, port in enumerate(free_ports(self.ports_per_pool))]
        path = os.pathsep.join(p for p in sys.path if isinstance(p, str) and p)
        env = {**os.environ, "PYTHONPATH": path, **self.env}
        rank_main = [sys.executable, "-c", "from conformance.adapters.ranks import _rank_main; _rank_main()"]
        _POOLS.add(self)
        for rank in range(self.world_size):
            if place.launcher:  # the launcher's standard input and output are the rank's pipes
                argv = shlex.split(place.launcher.replace("{host}", place.host(rank))) + rank_main + ["stdio"]
                proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
                down, up = os.dup(proc.stdin.fileno()), os.dup(proc.stdout.fileno())
                proc.stdin.close()
                proc.stdout.close()
            else:
                down_r, down, up, up_w = *os.pipe(), *os.pipe()
                proc = subprocess.Popen(rank_main + [str(down_r), str(up_w)], pass_fds=(down_r, up_w), env=env)
                os.close(down_r)
                os.close(up_w)
            self.procs.append(proc)
            self.conns.append((Connection(down, readable=False), Connection(up, writable=False)))
            self.conns[-1][0].send((self.program, rank, self.world_size, addresses, self.setup))
        self._gather("starting", START)

    def stop(self) -> None:
        """Kill every rank by its process id and wait for it (idempotent)."""
        for proc in self.procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
        for proc in self.procs:
            proc.wait()
        for down, up in self.conns:
            down.close()
            up.close()
        self.procs, self.conns = [], []
        _POOLS.discard(self)

    def ask(self, method: str, per_rank: list[tuple] | tuple = ()) -> list[Any]:
        """Call ``method`` in every rank at once (``per_rank[r]``: rank r's arguments, or one tuple for all) and
        return their results in rank order; RankError (the pool killed), Unsupported or NotImplementedError."""
        with self.lock:
            if not self.procs:
                self._start()
            args = per_rank if isinstance(per_rank, list) else [per_rank] * self.world_size
            try:
                for (down, _), a in zip(self.conns, args):
                    down.send((method, a))
            except OSError:
                self.stop()
                raise RankError(f"a rank was gone before {method!r} could be sent; the pool was killed") from None
            return self._gather(method, self.timeout)

    def _gather(self, what: str, timeout: float | None) -> list[Any]:
        replies: list[Any] = [None] * self.world_size
        waiting = {rank: up for rank, (_, up) in enumerate(self.conns)}
        deadline = time.monotonic() + timeout if timeout else None
        failed: list[tuple[int, str, str]] = []
        while waiting:
            limit = GRACE if failed else (None if deadline is None else max(deadline - time.monotonic(), 0.0))
            ready = wait(list(waiting.values()), limit)
            if not ready:
                break
            for rank in [r for r, c in waiting.items() if c in ready]:
                conn = waiting.pop(rank)
                try:
                    kind, value = conn.recv()
                except (EOFError, OSError, pickle.UnpicklingError):
                    try:
                        code = self.procs[rank].wait(1.0)
                    except subprocess.TimeoutExpired:
                        code = None
                    failed.append((rank, "died", f"rank {rank} died: {exit_cause(code)}"))
                    continue
                if kind == "ok":
                    replies[rank] = value
                else:
                    failed.append((rank, kind, value))
        if not failed and not waiting:
            return replies
        kinds = {kind for _, kind, _ in failed}
        if not waiting and kinds <= {"unsupported", "not implemented"}:  # every rank answered: the pool is sound
            kind, value = failed[0][1:]
            raise Unsupported(value) if kind == "unsupported" else NotImplementedError(value)
        self.stop()
        if failed:
            rank, kind, value = failed[0]
            text = value if kind == "died" else f"rank {rank}: {value.splitlines()[0] if value else kind}"
        else:
            text = (f"rank(s) {', '.join(map(str, waiting))} did not answer {what!r} within {timeout:g} s")
        raise RankError(f"{text} (while {what}; every rank was killed, the next item starts a fresh pool)")


@atexit.register
def _stop_all() -> None:
    for pool in list(_POOLS):
        pool.stop()


class RankSession:
    """A distributed mode's session (``base.Session``) in the kit's process: each step's gradient divided among the
    ranks (``distributed.split``), each rank's share sent to it, every rank's state read back.

    Built with ``start`` (the rank program's ``start`` arguments): each rank keeps the candidates of the last few
    sessions by key, so that an item's lanes (trajectory, single-step) share the pool.  ``per_step(step)``: what
    every rank's ``apply`` takes besides its share (the hyperparameters' numbers).  A rank's ``apply`` returns the
    combined gradients the candidate held (or None where the engine does not show them): each must be the vector's
    gradient bit for bit, else the kit's model of the engine is wrong and the step fails."""

    def __init__(self, pool: RankPool, start: tuple, dtypes: dict[str, str], combination: Any, how: str,
                 per_step: Any = None, dense: dict[str, tuple[int, ...]] | None = None) -> None:
        self.pool, self.dtypes, self.combination, self.how = pool, dtypes, combination, how
        self.dense = dense  # variable -> shape: IndexedSlices densified (duplicates summed) before the split
        self.per_step = per_step or (lambda step: {})
        self.states: list[dict] | None = None  # every rank's last read, until the next step
        self.notes: list[str] = []  # elements an even split gave to rank 0 alone
        self.key = next(_KEYS)
        self.started = pool.ask("start", (self.key, *start))

    def apply(self, grads: dict[str, Any], step: int) -> None:
        from conformance.adapters.base import densify
        from conformance.adapters.distributed import same_bits, split

        if self.dense is not None:
            grads = {n: None if g is None else densify(g, self.dense[n], np.float64) for n, g in grads.items()}
        divided = split(grads, self.dtypes, self.pool.world_size, self.how, self.combination)
        self.notes += [f"step {step + 1}: {n}" for n in divided.notes]
        extra = self.per_step(step)
        self.states = None
        combined = self.pool.ask("apply", [(self.key, part, extra) for part in divided.parts])
        for rank, held in enumerate(combined):
            for name, got in (held or {}).items():
                want = np.asarray(grads[name]).astype(got.dtype)
                if not np.all(same_bits(got, want)):
                    raise RuntimeError(f"rank {rank} holds a combined gradient of {name} other than the vector's "
                                       f"at step {step + 1} (the kit's model of the engine, {self._words(name)}, "
                                       "does not hold here): the comparison would not be fair")

    def _words(self, name: str) -> str:
        comb = self.combination
        return (comb if not callable(comb) else comb(self.dtypes[name])).words

    def read(self) -> dict:
        if self.states is None:
            self.states = self.pool.ask("read", (self.key,))
        return self.states[0]

    def replicas(self) -> list[dict]:
        """Every rank's view of the full state, in rank order."""
        self.read()
        return list(self.states)

    def load(self, state: dict) -> None:
        self.states = None
        self.pool.ask("load", (self.key, state))


class Sessions:
    """A rank program's candidates by session key, the last ``KEPT`` of them (the rank side of ``RankSession``)."""

    def __init__(self) -> None:
        self.by_key: dict[int, Any] = {}

    def add(self, key: int, item: Any) -> Any:
        self.by_key[key] = item
        for old in sorted(self.by_key)[:-KEPT]:
            del self.by_key[old]
        return item

    def __getitem__(self, key: int) -> Any:
        return self.by_key[key]
