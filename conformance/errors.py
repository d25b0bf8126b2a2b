"""How the kit words what went wrong inside a candidate: one line, never a traceback."""

from __future__ import annotations

import signal


class Unsupported(Exception):
    """What a vector asks cannot be expressed for this candidate (e.g. a callable epsilon); the message is why.

    Raised by adapters and by the harness: the item's outcome is *unsupported*, neither pass nor fail."""


#: What a candidate raises for a part of Adam it does not implement: that part is unsupported, not failed.
NOT_IMPLEMENTED = (NotImplementedError, Unsupported)


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message, at most ``limit`` characters."""
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else "")[:limit]


def exit_cause(exitcode: int | None) -> str:
    """How a child process ended, in words: the signal that killed it ("SIGSEGV") or its exit status."""
    if exitcode is not None and exitcode < 0:
        try:
            return signal.Signals(-exitcode).name
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit status {exitcode}"


def not_implemented(exc: BaseException, where: str = "") -> str:
    """The unsupported reason for a NOT_IMPLEMENTED exception: the adapter's own words, or the candidate's."""
    if isinstance(exc, Unsupported):
        return str(exc)
    text = first_line(exc)
    return f"not implemented by the candidate{where}: NotImplementedError" + (f": {text}" if text else "")


class TimedOut(BaseException):
    """An item that ran past ``--conformance-timeout``: a failure whatever the expectations say.  A BaseException, so
    that the xfail of a known divergence (``raises=Exception``) does not take it: a hang is never the divergence an
    expectations entry describes, and counting it as one would hide it."""


class CandidateError(Exception):
    """The candidate raised while being built (step 0) or at a step (1-based)."""

    def __init__(self, step: int, error: BaseException) -> None:
        self.step, self.error = step, error
        where = "while being built" if step == 0 else f"at step {step}"
        super().__init__(f"the candidate raised {type(error).__name__} {where}: {first_line(error)}")
