"""torch candidates that break a rank, for the rank processes' own checks (``tests/test_distributed_modes.py``)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import torch
import torch.distributed as dist


class _OnRank1(torch.optim.Adam):
    """``torch.optim.Adam`` that does something to its own process on rank 1 at its second step, once per run (the
    file named by ``ADAM_TEST_MARKER`` says it happened), so that the items after the broken one run normally."""

    def step(self, closure=None):  # noqa: ANN001, ANN201 - torch's signature
        marker = Path(os.environ["ADAM_TEST_MARKER"])
        self.calls = getattr(self, "calls", 0) + 1
        if dist.is_initialized() and dist.get_rank() == 1 and self.calls == 2 and not marker.exists():
            marker.write_text(str(os.getpid()), encoding="utf-8")
            self.breaks()
        return super().step(closure)


class KilledAdam(_OnRank1):
    """Rank 1 is killed (SIGKILL) in the middle of an item."""

    def breaks(self) -> None:
        os.kill(os.getpid(), signal.SIGKILL)


class HungAdam(_OnRank1):
    """Rank 1 stops answering in the middle of an item."""

    def breaks(self) -> None:
        time.sleep(3600)
