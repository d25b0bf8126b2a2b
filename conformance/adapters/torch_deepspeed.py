"""DeepSpeed's ZeRO stages 1, 2 and 3 as execution modes of the torch adapter (``deepspeed-zero1``, ``-zero2``,
``-zero3``): an optional extra.

DeepSpeed is not a dependency of the kit (``pip install deepspeed``; it compiles a C++ op on first use).  Where it
is not importable every item of these modes is unsupported with that one line (``MISSING``).  Where it is, the modes
run on the torch adapter's rank processes (``torch_distributed.TorchRank``, one gloo process group, which
``deepspeed.initialize`` reuses): per item each rank wraps its copy of the variables in DeepSpeed's engine with the
candidate (``torch.optim.Adam``) as a client optimizer, ZeRO at the mode's stage, float32 without loss scaling or
clipping.  A step: the loss ``sum(p * G_r)`` through ``engine.backward`` (DeepSpeed reduces the ranks' gradients
into its flat partitions), then ``engine.step()``.  The combined gradient, the variables and the slots are read back
from the flat partitions with DeepSpeed's documented accessors (``deepspeed.utils.safe_get_full_grad``,
``safe_get_full_fp32_param``, ``safe_get_full_optimizer_state``; collectives, called by every rank in the same
order) and loaded with their ``safe_set_full_*`` twins.

UNTESTED HERE: the machine this kit is developed on has no DeepSpeed, so this path has not been run by the kit's own
tests; a developer's machine with DeepSpeed runs it (the kit's bit-for-bit check of the combined gradient each step
fails the item loudly if the averaging modelled below is not DeepSpeed's).
"""

from __future__ import annotations

import importlib.util
from typing import Any

import torch

#: execution mode -> ZeRO stage.
MODES = {f"deepspeed-zero{stage}": stage for stage in (1, 2, 3)}
TEXT = ("DeepSpeed engine, ZeRO stage {stage}, torch.optim.Adam as its client optimizer, float32; gloo ranks on "
        "127.0.0.1 (optional extra, untested on the kit's own machine)")
#: Why every item is unsupported where DeepSpeed is not installed.
MISSING = "deepspeed is not installed: pip install deepspeed; it compiles a C++ op on first use"
#: Why other dtypes are unsupported: DeepSpeed's fp16 and bf16 modes step float32 master copies, another algorithm.
FLOAT32_ONLY = ("the deepspeed modes run float32 parameters (DeepSpeed's fp16/bf16 modes keep float32 master weights "
                "and step those, not the parameter's dtype)")


def available() -> bool:
    """Whether DeepSpeed can be imported (without importing it: that may compile its op)."""
    return importlib.util.find_spec("deepspeed") is not None


def config(stage: int) -> dict:
    """The engine's configuration: one micro-batch per step, ZeRO at ``stage``, no clipping, float32 (no fp16/bf16
    section); ``zero_allow_untested_optimizer`` since the client optimizer is torch's Adam."""
    return {"train_micro_batch_size_per_gpu": 1, "gradient_accumulation_steps": 1, "gradient_clipping": 0.0,
            "zero_optimization": {"stage": stage}, "zero_allow_untested_optimizer": True}


class DeepSpeedItem:
    """One session in one rank (``torch_distributed.TorchRank.start`` builds it for a deepspeed engine): the variables
    as parameters of one module, DeepSpeed's engine over them, the candidate as its client optimizer."""

    def __init__(self, rank: Any, cls: Any, names: list[str], initial: dict, dtypes: dict, kwargs: dict,
                 engine: str) -> None:
        import deepspeed

        from conformance.adapters.torch_distributed import _Term

        self.names = names
        holders = torch.nn.ModuleList(_Term(torch.tensor(initial[n], dtype=torch.float32)) for n in names)
        self.module = _Terms(holders)
        self.params = [h.p for h in holders]
        client = cls(self.params, **kwargs)
        group = client.param_groups[0]
        #: The candidate's own hyperparameter defaults, read before DeepSpeed regroups its parameters.
        self.own = {"learning_rate": float(group["lr"]), "beta_1": float(group["betas"][0]),
                    "beta_2": float(group["betas"][1]), "epsilon": float(group["eps"])}
        # The rank's gloo group already exists: DeepSpeed uses it (dist_init_required=False).
        self.engine, self.opt, _, _ = deepspeed.initialize(model=self.module, optimizer=client,
                                                           config=config(MODES[engine]), dist_init_required=False)

    def apply(self, grads: dict, hp: dict) -> dict:
        """Feed this rank's share through the engine, step, and return the combined gradients DeepSpeed holds."""
        from deepspeed.utils import safe_get_full_grad

        from conformance.adapters.torch_distributed import _plain

        for group in self.opt.param_groups:
            group.update(lr=hp["learning_rate"], betas=(hp["beta_1"], hp["beta_2"]), eps=hp["epsilon"])
        shares = [None if grads.get(n) is None else torch.from_numpy(_plain(grads[n])).to(torch.float32)
                  for n in self.names]
        self.engine.backward(self.engine(shares))
        combined = {n: _numpy(safe_get_full_grad(p)) for n, p in zip(self.names, self.params)
                    if grads.get(n) is not None}
        self.engine.step()
        return combined

    def _inner_states(self) -> list[dict]:
        """torch Adam's own state over DeepSpeed's flat partitions (where its ``step`` counter is)."""
        inner = getattr(self.opt, "optimizer", self.opt)
        return list(inner.state.values())

    def read(self) -> dict:
        """The full state, gathered from the flat partitions (every rank gets all of it)."""
        from deepspeed.utils import safe_get_full_fp32_param, safe_get_full_optimizer_state

        from conformance.adapters.torch_distributed import SLOTS

        steps = [int(s["step"]) for s in self._inner_states() if "step" in s]
        out: dict[str, Any] = {"iterations": max(steps, default=0)}
        for n, p in zip(self.names, self.params):
            out[n] = {"variable": _numpy(safe_get_full_fp32_param(p))}
            for slot, key in SLOTS.items():
                value = safe_get_full_optimizer_state(p, key) if steps else None  # no slot before the first step
                out[n][slot] = None if value is None else _numpy(value)
        return out

    def load(self, state: dict) -> None:
        """Set the variables and the slots DeepSpeed holds to ``state``, through its own setters."""
        from deepspeed.utils import safe_set_full_fp32_param, safe_set_full_optimizer_state

        from conformance.adapters.torch_distributed import SLOTS

        inner = self._inner_states()
        for n, p in zip(self.names, self.params):
            safe_set_full_fp32_param(p, torch.tensor(state[n]["variable"], dtype=torch.float32))
            for slot, key in SLOTS.items():
                if inner and any(key in s for s in inner) and state[n].get(slot) is not None:
                    safe_set_full_optimizer_state(p, torch.tensor(state[n][slot], dtype=torch.float32), key)
        for s in inner:
            if "step" in s:
                s["step"].fill_(state["iterations"])


class _Terms(torch.nn.Module):
    """``sum(p * G_r)`` over the variables that have a gradient this step: one without is left out of the loss, so
    DeepSpeed sees it as a user's unused parameter."""

    def __init__(self, holders: Any) -> None:
        super().__init__()
        self.holders = holders

    def forward(self, shares: list) -> Any:
        return sum(h(g) for h, g in zip(self.holders, shares) if g is not None)


def _numpy(x: Any) -> Any:
    if x is None:
        raise RuntimeError("DeepSpeed returned no full value for a parameter (safe_get_full_* gave None: the "
                           "parameter is not in its ZeRO partitions)")
    return x.detach().to("cpu").float().numpy()
