"""Adapter for ``torch.optim.Adam``.

Translations (off with ``raw``): epsilon hat becomes torch's Algorithm-1
epsilon, ``eps = epsilon / sqrt(1 - beta_2**t)``, set before every step; an
IndexedSlices gradient is densified with duplicates summed (torch's Adam
refuses sparse gradients).  Always: callables, schedules and ``decay`` are
evaluated by the adapter before each step and written into the param group,
since torch takes numbers.  "Defaults" vectors build ``Adam(params)``, so
torch's own defaults are what is measured.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from conformance.adapters.base import Adapter, algorithm1_epsilon, densify, per_step_numbers, subnormal
from conformance.dtypes import NUMPY_DTYPES
from conformance.features import Feature

TORCH_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32, "float64": torch.float64}


class TorchAdapter(Adapter):
    name = "torch"
    framework = "torch"

    @property
    def translations(self) -> list[str]:
        out = ["callables, schedules and decay evaluated by the adapter before each step"]
        if not self.raw:
            out = ["epsilon hat -> eps = epsilon / sqrt(1 - beta_2**t) before each step",
                   "IndexedSlices densified (duplicates summed)"] + out
        return out

    def versions(self) -> dict[str, str]:
        return {"torch": str(torch.__version__)}

    def _device(self) -> torch.device:
        if self.device == "gpu":
            if not torch.cuda.is_available():
                raise RuntimeError("--device=gpu: torch sees no CUDA device")
            return torch.device("cuda")
        return torch.device("cpu")

    def device_used(self) -> str:
        return str(torch.zeros(1, device=self._device()).device)

    def lacking(self) -> dict[Feature, str]:
        out = {Feature.CONFIG_ROUND_TRIP: "torch.optim.Adam has no get_config / from_config"}
        if self.raw:
            out[Feature.SPARSE] = "torch.optim.Adam refuses sparse gradients (RuntimeError)"
        return out

    def probe(self) -> Any:
        return self.candidate([torch.zeros(1, requires_grad=True)])

    def flushes_subnormals(self, dtype: str) -> bool:
        x = torch.tensor(subnormal(dtype), dtype=TORCH_DTYPES[dtype], device=self._device())
        return float(x * torch.ones((), dtype=x.dtype, device=x.device)) == 0.0

    def start(self, spec: Any) -> "TorchSession":
        return TorchSession(self.candidate, spec, self._device(), self.raw)


class TorchSession:
    def __init__(self, cls: Any, spec: Any, device: torch.device, raw: bool) -> None:
        self.spec, self.raw, self.dtype = spec, raw, TORCH_DTYPES[spec.dtype]
        self.params = {n: torch.tensor(v, dtype=self.dtype, device=device, requires_grad=True) for n, v in spec.variables.items()}
        kwargs = {} if spec.defaults else {"amsgrad": spec.amsgrad}
        self.opt = cls(list(self.params.values()), **kwargs)
        group = self.opt.param_groups[0]
        self.own_defaults = {"learning_rate": float(group["lr"]), "beta_1": float(group["betas"][0]),
                             "beta_2": float(group["betas"][1]), "epsilon": float(group["eps"])}

    def apply(self, grads: dict[str, Any], step: int) -> None:
        hp = per_step_numbers({} if self.spec.defaults else self.spec.hyper, step, self.own_defaults)
        eps = hp["epsilon"] if self.raw else algorithm1_epsilon(hp["epsilon"], hp["beta_2"], step + 1)
        self.opt.param_groups[0].update(lr=hp["learning_rate"], betas=(hp["beta_1"], hp["beta_2"]), eps=eps)
        for n, p in self.params.items():
            g = grads.get(n)
            p.grad = None if g is None else torch.tensor(densify(g, tuple(p.shape), np.float64), dtype=self.dtype, device=p.device)
        self.opt.step()

    def _numpy(self, x: torch.Tensor) -> np.ndarray:
        """A copy in the vector's dtype (NumPy has no bfloat16 of its own: through float32, exactly)."""
        x = x.detach().to("cpu")
        return (x.float() if x.dtype == torch.bfloat16 else x).numpy().astype(NUMPY_DTYPES[self.spec.dtype])

    def read(self) -> dict:
        steps = [int(s["step"]) for s in self.opt.state.values() if "step" in s]
        out: dict[str, Any] = {"iterations": max(steps, default=0)}  # torch counts per parameter
        for n, p in self.params.items():
            state = self.opt.state.get(p, {})
            out[n] = {"variable": self._numpy(p)}
            for slot, key in SLOTS.items():
                out[n][slot] = self._numpy(state[key]) if key in state else None
        return out

    def load(self, state: dict) -> None:
        """Copy into the parameters and their optimizer state; every stepped parameter's step becomes iterations."""
        with torch.no_grad():
            for n, p in self.params.items():
                p.copy_(torch.from_numpy(state[n]["variable"]).to(p.dtype))
                own = self.opt.state.get(p, {})
                for slot, key in SLOTS.items():
                    if key in own and state[n].get(slot) is not None:
                        own[key].copy_(torch.from_numpy(state[n][slot]).to(p.dtype))
                if "step" in own:
                    own["step"].fill_(state["iterations"])


SLOTS = {"m": "exp_avg", "v": "exp_avg_sq", "vhat": "max_exp_avg_sq"}
