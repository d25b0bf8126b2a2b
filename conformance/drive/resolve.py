"""Resolve ``--candidate=module:attr`` into an adapter, with one-line usage errors."""

from __future__ import annotations

import os
import pkgutil
import shlex
from typing import Any

import pytest

from conformance import adapters
from conformance.errors import first_line


def resolve(spec: str, adapter_name: str | None, *, raw: bool, device: str, execution: str | None = None,
            world_size: int = 2, split: str = "even") -> Any:
    """Import the candidate, pick its adapter and check that it can be built; ``pytest.UsageError`` otherwise.
    ``world_size`` and ``split``: the ranks of a distributed execution mode and how a step's gradient is divided.

    A distributed mode run in this process gets its devices first (``adapters.replicas.prepare``): TensorFlow and
    JAX fix them when they start, which importing the candidate may do."""
    where = f"--candidate={spec}"
    if ":" not in spec or not all(spec.partition(":")[::2]):
        raise pytest.UsageError(f"{where}: expected module:attr, for example tf_keras.optimizers.legacy:Adam")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's import-time log lines
    from conformance.adapters import replicas

    try:
        replicas.prepare(adapter_name or adapters.choose(spec), execution, world_size)
    except RuntimeError as exc:
        raise pytest.UsageError(f"--execution={execution}: {exc}") from None
    try:
        obj = pkgutil.resolve_name(spec)
    except ModuleNotFoundError as exc:
        raise pytest.UsageError(f"{where}: cannot import module {exc.name!r} ({exc})") from None
    except AttributeError as exc:
        raise pytest.UsageError(f"{where}: {exc} (expected module:attr)") from None
    except Exception as exc:  # noqa: BLE001 - any import-time failure of a foreign module is a usage error
        raise pytest.UsageError(f"{where}: importing it raised {type(exc).__name__}: {first_line(exc)}") from None
    if not callable(obj):
        raise pytest.UsageError(f"{where}: {type(obj).__name__} object is not a class or factory")
    name = adapter_name or adapters.choose(spec)
    modes = adapters.load(name).executions
    if execution and execution not in modes:
        raise pytest.UsageError(f"--execution={execution}: the {name} adapter has no such execution mode "
                                f"(it has: {', '.join(modes)})")
    try:
        adapter = adapters.load(name)(obj, raw=raw, device=device, execution=execution, world_size=world_size,
                                           split=split)
        adapter.device_used()
    except Exception as exc:  # noqa: BLE001
        raise pytest.UsageError(f"{where}: the {name} adapter cannot use it: {type(exc).__name__}: {first_line(exc)}") from None
    try:
        adapter.probe()
    except Exception as exc:  # noqa: BLE001
        raise pytest.UsageError(f"{where}: constructing it raised {type(exc).__name__}: {first_line(exc)}") from None
    return adapter


def resolve_command(command: str, *, timeout: float) -> Any:
    """Start a process candidate (``spec/pipe-protocol.md``) and shake hands; ``pytest.UsageError`` otherwise."""
    from conformance.adapters.pipe import PipeAdapter

    where = f"--candidate-command={command}"
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise pytest.UsageError(f"{where}: cannot split it as a shell would: {exc}") from None
    if not argv:
        raise pytest.UsageError(f"{where}: the command is empty")
    adapter = PipeAdapter(argv)
    adapter.timeout = timeout
    try:
        adapter.probe()
    except FileNotFoundError:
        raise pytest.UsageError(f"{where}: no such program {argv[0]!r}") from None
    except Exception as exc:  # noqa: BLE001 - whatever went wrong at the handshake is a usage error
        raise pytest.UsageError(f"{where}: {type(exc).__name__}: {first_line(exc)}") from None
    return adapter
