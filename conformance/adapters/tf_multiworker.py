"""TensorFlow's ``MultiWorkerMirroredStrategy`` as an execution mode of the tf_keras adapter (``multiworker``,
``multiworker-function``).

Each rank is a worker process of its own (``conformance.adapters.ranks``): ``TF_CONFIG`` names every worker on
127.0.0.1 with a free port, and the worker builds its one strategy when it starts (TensorFlow allows one per
process) and keeps it across items.  Per item it builds the variables and the candidate under
``strategy.scope()`` (mirrored variables, one copy per worker) and calls ``apply_gradients`` in replica context
with its own share of the step's gradient (``strategy.run``; inside one ``tf.function`` in ``-function``): the
optimizer sums the workers' gradients (an all-reduce) before it updates.  The state is read from each worker's
copy; the twin is the same candidate on one device, eagerly or under ``tf.function``.
"""

from __future__ import annotations

import json
import os
import pkgutil
from typing import Any

#: execution mode -> whether each step runs inside one tf.function.
MODES = {"multiworker": False, "multiworker-function": True}
TEXT = "MultiWorkerMirroredStrategy, apply_gradients in replica context (gradients summed by an all-reduce)"


class TfWorkerRank:
    """The rank side (``ranks.RankPool`` program): one worker of one MultiWorkerMirroredStrategy, for the life of the
    process, and the candidates of the last few sessions (``ranks.Sessions``)."""

    def __init__(self, rank: int, world_size: int, ports: list[int], setup: dict) -> None:
        os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                                              "task": {"type": "worker", "index": rank}})
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import tensorflow as tf

        from conformance.adapters.ranks import Sessions

        tf.get_logger().setLevel("ERROR")  # "using CollectiveAllReduceStrategy eagerly has overhead", every step
        self.strategy = tf.distribute.MultiWorkerMirroredStrategy()
        self.sessions = Sessions()
        # The adapter's own session class and schedule wrapper, named by the adapter (which imports this module).
        self.session, self.schedule = (pkgutil.resolve_name(setup[k]) for k in ("session", "schedule"))

    def start(self, key: int, cls: Any, spec: Any, function: bool) -> None:
        self.sessions.add(key, _worker_session(self.strategy, self.session, self.schedule, cls, spec, function))

    def apply(self, key: int, grads: dict, extra: dict) -> None:
        self.sessions[key].apply(grads, 0)

    def read(self, key: int) -> dict:
        return self.sessions[key].read()

    def load(self, key: int, state: dict) -> None:
        self.sessions[key].load(state)


def _worker_session(strategy: Any, base: type, schedule: type, cls: Any, spec: Any, function: bool) -> Any:
    """A session of the adapter's (``base``: ``tf_keras.TfSession``, whose ``read`` and ``load`` it keeps) whose
    optimizer and variables live under ``strategy`` and whose step runs in replica context."""
    import tensorflow as tf

    from conformance.adapters.base import Batches
    from conformance.adapters.numpy_port import constructor_kwargs
    from conformance.adapters.tf_ops import TF_DTYPES, tf_gradient

    class WorkerSession(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            self.amsgrad = spec.amsgrad
            with strategy.scope():
                self.opt = cls(**constructor_kwargs(spec, schedule))
                self.vars = {n: tf.Variable(v, dtype=TF_DTYPES[spec.dtype_of(n)], name=n)
                             for n, v in spec.variables.items()}
                if function:  # a tf.function creates no variables after its first trace
                    self.opt._create_all_weights(list(self.vars.values()))
            self.batches = Batches()
            if function:
                self.batches.note(dict.fromkeys(self.vars, True))
            self.step = tf.function(self._replica) if function else self._replica

        def _replica(self, grads: dict, without: tuple) -> None:
            pairs = [(grads.get(n), self.vars[n]) for n in self.vars if n in grads or n in without]
            self.opt.apply_gradients(pairs)

        def apply(self, grads: dict[str, Any], step: int) -> None:
            tensors = {n: tf_gradient(g, self.vars[n].dtype) for n, g in grads.items() if g is not None}
            strategy.run(self.step, args=(tensors, tuple(n for n, g in grads.items() if g is None)))
            self.batches.note(grads)

    return WorkerSession()


def start(adapter: Any, spec: Any) -> Any:
    """The session of one item on ``adapter``'s worker pool (started on first use, kept across items)."""
    from conformance.adapters.distributed import Combination
    from conformance.adapters.ranks import RankPool, RankSession

    if adapter.pool is None:
        setup = {"session": "conformance.adapters.tf_keras:TfSession", "schedule": "conformance.adapters.tf_keras:_Schedule"}
        adapter.pool = RankPool("conformance.adapters.tf_multiworker:TfWorkerRank", adapter.world_size, setup,
                                ports_per_pool=adapter.world_size)
    return RankSession(adapter.pool, (adapter.candidate, spec, MODES[adapter.execution]),
                       {n: spec.dtype_of(n) for n in spec.variables}, Combination.summed(), adapter.split)
