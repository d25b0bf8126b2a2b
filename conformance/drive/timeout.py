"""The per-item limit on a candidate's run (``--conformance-timeout``) when it runs in the kit's own process."""

from __future__ import annotations

import threading
from typing import Any, Callable


def call_with_timeout(fn: Callable[[], Any], seconds: float) -> Any:
    """Run ``fn`` in a worker thread; TimeoutError if it has not returned after ``seconds``.

    A hung candidate cannot be killed from Python: its thread is left behind
    (daemon) and the run goes on with the next item.
    """
    if seconds <= 0:
        return fn()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=target, daemon=True, name="adam-conformance-candidate")
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise TimeoutError(f"the candidate did not finish within {seconds:g} s (--conformance-timeout)")
    if "error" in box:
        raise box["error"]
    return box["value"]
