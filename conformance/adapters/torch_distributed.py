"""torch's distributed engines as execution modes of the torch adapter: DDP, ZeroRedundancyOptimizer, FSDP2.

Each rank is a process of its own (``conformance.adapters.ranks``) in one gloo process group on 127.0.0.1, kept
across items.  Per item every rank builds the candidate over its own copy of the variables, wrapped as the engine
wants them: ``DistributedDataParallel`` (``ddp``); DDP with ``ZeroRedundancyOptimizer(params, optimizer_class=
candidate)`` (``zero``: the optimizer's state sharded, each parameter's slots on one rank); ``fully_shard`` on each
variable (``fsdp2``: variables, gradients and slots sharded along their first axis).  A step's gradient reaches the
candidate through the engine's own reduction: each rank's share ``G_r`` (``conformance.adapters.distributed``) is
the gradient of the loss ``sum(p * G_r)``, backpropagated through the engine, which all-reduces (DDP) or
reduce-scatters (FSDP2) it.  The kit checks that the combined gradient the candidate then holds is the vector's,
bit for bit, before the candidate steps.  Reading the state back is each engine's own way: DDP's parameters are
replicated; ZeRO gathers the state with ``consolidate_state_dict``; FSDP2 with ``full_tensor()``.  DeepSpeed's
engine (``deepspeed-zero1`` to ``-zero3``, an optional extra) runs on the same ranks: ``torch_deepspeed``.
"""

from __future__ import annotations

import pkgutil
from typing import Any

import numpy as np
import torch

from conformance.errors import Unsupported

#: execution mode -> (engine, kernel): the kernel is the non-distributed mode of the candidate on one device.
MODES = {f"{engine}{'-' + kernel if kernel != 'eager' else ''}": (engine, kernel)
         for engine in ("ddp", "zero", "fsdp2") for kernel in ("eager", "foreach", "fused")}
ENGINES = {"ddp": "DistributedDataParallel (gradients all-reduced, averaged)",
           "zero": "ZeroRedundancyOptimizer(optimizer_class=candidate) under DDP (optimizer state sharded by parameter)",
           "fsdp2": "fully_shard (FSDP2: parameters, gradients and state sharded along the first axis)"}
KERNELS = {"eager": "torch's default implementation", "foreach": "foreach=True", "fused": "fused=True"}
SLOTS = {"m": "exp_avg", "v": "exp_avg_sq", "vhat": "max_exp_avg_sq"}


def combination(engine: str, world_size: int, dtype: str) -> Any:
    """How the engine combines the ranks' gradients in ``dtype`` (read from torch's sources, checked every step):
    DDP divides each rank's gradient by the world size, then sums; FSDP2 averages in float32 and bfloat16, and in
    float16 divides by the largest power of two p with p * p <= N before the sum and by N / p after it."""
    from conformance.adapters.distributed import Combination

    if engine == "fsdp2":
        if dtype in ("float16", "float64"):
            pre = 1
            while world_size % pre == 0 and world_size / pre > pre:
                pre *= 2
            return Combination.averaged(world_size, pre)
        return Combination.averaged(world_size, 1)
    return Combination.averaged(world_size)


class TorchRank:
    """The rank side (``ranks.RankPool`` program): one gloo process group for the life of the process, and the
    candidates of the last few sessions (``ranks.Sessions``)."""

    def __init__(self, rank: int, world_size: int, addresses: list[str], setup: dict) -> None:
        import torch.distributed as dist

        from conformance.adapters.ranks import Sessions

        torch.set_num_threads(1)  # the ranks share the machine's cores
        dist.init_process_group("gloo", init_method=f"tcp://{addresses[0]}", rank=rank, world_size=world_size)
        self.rank, self.world_size = rank, world_size
        self.sessions = Sessions()

    def start(self, key: int, *args: Any) -> dict:
        engine = args[-1]
        # DeepSpeed's item by name: its module imports this one (and DeepSpeed only where it is installed).
        item = pkgutil.resolve_name("conformance.adapters.torch_deepspeed:DeepSpeedItem") if engine.startswith(
            "deepspeed") else _Item
        return self.sessions.add(key, item(self, *args)).own

    def apply(self, key: int, grads: dict, hp: dict) -> dict:
        return self.sessions[key].apply(grads, hp)

    def read(self, key: int) -> dict:
        return self.sessions[key].read()

    def load(self, key: int, state: dict) -> None:
        self.sessions[key].load(state)


class _Item:
    """One session's variables, the engine's wrapping of them and the candidate, in one rank."""

    def __init__(self, rank: TorchRank, cls: Any, names: list[str], initial: dict, dtypes: dict, kwargs: dict,
                 engine: str) -> None:
        self.rank, self.world_size = rank.rank, rank.world_size
        self.names, self.dtypes, self.engine = names, dtypes, engine
        holders = torch.nn.ModuleList()
        for n in names:
            holders.append(_Term(torch.tensor(initial[n], dtype=getattr(torch, dtypes[n]))))
        if engine == "fsdp2":
            from torch.distributed.fsdp import fully_shard

            for holder in holders:  # one group per variable: a vector's variables may differ in dtype
                fully_shard(holder)
            self.module = fully_shard(_Loss(holders))
        else:
            from torch.nn.parallel import DistributedDataParallel

            self.module = DistributedDataParallel(_Loss(holders))
        self.params = [h.p for h in holders]
        if engine == "zero":
            from torch.distributed.optim import ZeroRedundancyOptimizer

            self.opt = ZeroRedundancyOptimizer(self.params, optimizer_class=cls, **kwargs)
            self.local = self.opt.optim
        else:
            self.opt = self.local = cls(self.params, **kwargs)
        group = self.opt.param_groups[0]
        #: The candidate's own hyperparameter defaults, read from its param group as the one-device session does.
        self.own = {"learning_rate": float(group["lr"]), "beta_1": float(group["betas"][0]),
                    "beta_2": float(group["betas"][1]), "epsilon": float(group["eps"])}

    def apply(self, grads: dict, hp: dict) -> dict:
        """Feed this rank's share through the engine, step, and return the combined gradients the candidate held."""
        for group in self.opt.param_groups:
            group.update(lr=hp["learning_rate"], betas=(hp["beta_1"], hp["beta_2"]), eps=hp["epsilon"])
        for p in self.params:
            p.grad = None
        shares = [torch.from_numpy(_plain(grads[n])).to(p.dtype) if grads.get(n) is not None
                  else torch.zeros(_shape(p), dtype=p.dtype) for n, p in zip(self.names, self.params)]
        self.module(shares).backward()
        combined = {}
        for n, p in zip(self.names, self.params):
            if grads.get(n) is None:
                p.grad = None  # not in the call, or no gradient: the candidate skips it
            else:
                combined[n] = self._numpy(_full(p.grad), n)
        self.opt.step()
        return combined

    def read(self) -> dict:
        """The full state as this rank sees it (ZeRO: gathered to each rank in turn, so that every rank reads it)."""
        if self.engine == "zero":
            for r in range(self.world_size):  # a rank keeps only the last state gathered to it
                self.opt.consolidate_state_dict(to=r)
                if r == self.rank:
                    saved = self.opt.state_dict()["state"]  # keyed by the parameter's position
            states = {i: saved.get(i, {}) for i in range(len(self.params))}
        else:
            states = {i: self.local.state.get(p, {}) for i, p in enumerate(self.params)}
        steps = [int(_full(s["step"])) for s in states.values() if "step" in s]
        out: dict[str, Any] = {"iterations": max(steps, default=0)}
        for i, (n, p) in enumerate(zip(self.names, self.params)):
            out[n] = {"variable": self._numpy(_full(p), n)}
            for slot, key in SLOTS.items():
                out[n][slot] = self._numpy(_full(states[i][key]), n) if key in states[i] else None
        return out

    def load(self, state: dict) -> None:
        """Set the variables and the slots this rank holds (its shard, its parameters' under ZeRO) to ``state``."""
        with torch.no_grad():
            for n, p in zip(self.names, self.params):
                _set(p, torch.from_numpy(np.asarray(state[n]["variable"])).to(p.dtype))
                own = self.local.state.get(p, {})
                for slot, key in SLOTS.items():
                    if key in own and state[n].get(slot) is not None:
                        _set(own[key], torch.from_numpy(np.asarray(state[n][slot])).to(p.dtype))
                if "step" in own:
                    own["step"].fill_(state["iterations"])

    def _numpy(self, x: Any, name: str) -> np.ndarray:
        from conformance.dtypes import NUMPY_DTYPES

        x = x.detach().to("cpu")
        return (x.float() if x.dtype == torch.bfloat16 else x).numpy().astype(NUMPY_DTYPES[self.dtypes[name]])



class _Term(torch.nn.Module):
    """One variable and its term ``sum(p * G_r)`` of the loss (a module of its own: FSDP2 shards per module)."""

    def __init__(self, value: torch.Tensor) -> None:
        super().__init__()
        self.p = torch.nn.Parameter(value)

    def forward(self, share: torch.Tensor) -> torch.Tensor:
        return (self.p * share).sum()


class _Loss(torch.nn.Module):
    """``sum(p * G_r)`` over the variables: its gradient with respect to each ``p`` is this rank's share ``G_r``."""

    def __init__(self, holders: torch.nn.ModuleList) -> None:
        super().__init__()
        self.holders = holders

    def forward(self, shares: list[torch.Tensor]) -> torch.Tensor:
        return sum(h(g) for h, g in zip(self.holders, shares))


def _plain(g: Any) -> np.ndarray:
    """A share as NumPy gives it to torch: bfloat16 (``ml_dtypes``, unknown to torch) through float32, exactly."""
    g = np.ascontiguousarray(g)
    return g.astype(np.float32) if g.dtype.name == "bfloat16" else g


def _shape(p: Any) -> tuple[int, ...]:
    return tuple(p.shape)


def _full(x: Any) -> Any:
    """A DTensor's whole value (FSDP2; a collective: every rank calls it in the same order), else ``x``."""
    return x.full_tensor() if hasattr(x, "full_tensor") else x


def _set(x: Any, value: Any) -> None:
    """Copy ``value`` (the whole tensor) into ``x``: into this rank's shard where ``x`` is a DTensor."""
    if hasattr(x, "to_local"):
        from torch.distributed.tensor import distribute_tensor

        x.to_local().copy_(distribute_tensor(value, x.device_mesh, x.placements).to_local())
    else:
        x.copy_(value)


def start(adapter: Any, spec: Any) -> Any:
    """The session of one item on ``adapter``'s rank pool (started on first use, kept across items)."""
    from conformance.adapters.base import per_step_numbers
    from conformance.adapters.ranks import RankPool, RankSession

    engine, kernel = MODES.get(adapter.execution, (adapter.execution, "eager"))  # a deepspeed mode: its own engine
    if adapter.pool is None:
        # DeepSpeed on the CPU accelerator, as the ranks' tensors and gloo group are (a GPU would make it pick CUDA).
        env = {"DS_ACCELERATOR": "cpu"} if engine.startswith("deepspeed") else {}
        adapter.pool = RankPool("conformance.adapters.torch_distributed:TorchRank", adapter.world_size, {}, env=env,
                                placement=adapter.placement)
    kwargs = {} if spec.defaults else {"amsgrad": spec.amsgrad}
    if kernel != "eager":
        kwargs[kernel] = True  # how the step runs, not a hyperparameter: also for "defaults" vectors
    names = list(spec.variables)
    dtypes = {n: spec.dtype_of(n) for n in names}
    hyper = {} if spec.defaults else spec.hyper
    if engine == "zero" and len(set(dtypes.values())) > 1:
        raise Unsupported("ZeroRedundancyOptimizer refuses parameters of several dtypes (ValueError: it only supports "
                          "using the same dense type for all parameters)")
    if engine == "fsdp2" and any(np.ndim(v) == 0 for v in spec.variables.values()):
        raise Unsupported("fully_shard refuses a scalar (0-d) parameter (ValueError: fully_shard doesn't support "
                          "scalar parameters)")
    session = RankSession(adapter.pool, (adapter.candidate, names, dict(spec.variables), dtypes, kwargs, engine),
                          dtypes, lambda dtype: combination(engine, adapter.world_size, dtype), adapter.split,
                          lambda step: per_step_numbers(hyper, step, session.started[0]),
                          dense={n: np.shape(v) for n, v in spec.variables.items()})
    return session
