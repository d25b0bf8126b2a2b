"""TensorFlow's ``MultiWorkerMirroredStrategy`` as an execution mode (``multiworker``, ``multiworker-function``) of
the tf_keras adapter and of Keras 3 on the TensorFlow backend: one mechanism, the adapter naming the function that
builds a worker's session (``start``'s ``factory``: ``tf_keras.multiworker_session``, ``keras3.multiworker_session``).

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

    def __init__(self, rank: int, world_size: int, addresses: list[str], setup: dict) -> None:
        os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": addresses},
                                              "task": {"type": "worker", "index": rank}})
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import tensorflow as tf

        from conformance.adapters.ranks import Sessions

        tf.get_logger().setLevel("ERROR")  # "using CollectiveAllReduceStrategy eagerly has overhead", every step
        self.strategy = tf.distribute.MultiWorkerMirroredStrategy()
        self.sessions = Sessions()
        # The adapter's session factory, named by the adapter (which imports this module), called as
        # factory(strategy, cls, spec, function): a session whose optimizer and variables live under the strategy and
        # whose apply runs the candidate in replica context (strategy.run; inside one tf.function where asked).
        self.factory = pkgutil.resolve_name(setup["factory"])

    def start(self, key: int, cls: Any, spec: Any, function: bool) -> None:
        self.sessions.add(key, self.factory(self.strategy, cls, spec, function))

    def apply(self, key: int, grads: dict, extra: dict) -> None:
        self.sessions[key].apply(grads, 0)

    def read(self, key: int) -> dict:
        return self.sessions[key].read()

    def load(self, key: int, state: dict) -> None:
        self.sessions[key].load(state)


def start(adapter: Any, spec: Any, factory: str) -> Any:
    """The session of one item on ``adapter``'s worker pool (started on first use, kept across items); ``factory``
    ("module:function") builds the session in each worker."""
    from conformance.adapters.distributed import Combination
    from conformance.adapters.ranks import RankPool, RankSession

    if adapter.pool is None:
        adapter.pool = RankPool("conformance.adapters.tf_multiworker:TfWorkerRank", adapter.world_size, {"factory": factory},
                                ports_per_pool=adapter.world_size, placement=adapter.placement)
    return RankSession(adapter.pool, (adapter.candidate, spec, MODES[adapter.execution]),
                       {n: spec.dtype_of(n) for n in spec.variables}, Combination.summed(), adapter.split)
