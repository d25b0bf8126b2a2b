"""A rank program without a framework, for the rank pool's own tests (``tests/test_distributed.py``)."""

from __future__ import annotations

import os
import signal
import time

from conformance.errors import Unsupported


class Toy:
    """Answers, raises, dies or hangs on request."""

    def __init__(self, rank: int, world_size: int, addresses: list[str], setup: dict) -> None:
        self.rank, self.world_size, self.setup, self._addresses = rank, world_size, setup, addresses

    def addresses(self) -> list[str]:
        return self._addresses

    def host(self) -> str | None:
        """The host its launcher was given (tests' launchers pass it as ADAM_TEST_HOST)."""
        return os.environ.get("ADAM_TEST_HOST")

    def hello(self) -> str:
        return f"{self.setup['greeting']} {self.rank}/{self.world_size}"

    def echo(self, x: object) -> object:
        return x

    def pids(self) -> int:
        return os.getpid()

    def die(self, me: bool) -> None:
        if me:
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(60)  # as a rank waiting in a collective for the one that died

    def fail(self, me: bool) -> None:
        if me:
            raise ValueError("bad input")
        time.sleep(60)

    def hang(self, me: bool) -> None:
        time.sleep(600 if me else 0)

    def unsupported(self) -> None:
        raise Unsupported("cannot express it")
