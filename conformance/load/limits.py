"""What a vector file may declare: the limits checked before anything is expanded or allocated, and the safe YAML loader."""

from __future__ import annotations

import math
import os
from pathlib import Path

import yaml

from conformance.load.vector import VectorError

#: The YAML loader: libyaml's when present; a safe loader never constructs Python objects.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _limit(name: str, default: int) -> int:
    return int(os.environ.get(f"ADAM_CONFORMANCE_{name}", default))


#: What a vector file may declare, checked before anything is expanded or allocated.  Each can be raised with
#: the environment variable ``ADAM_CONFORMANCE_<NAME>`` (for example ``ADAM_CONFORMANCE_MAX_ELEMENTS``) for
#: real vectors larger than the bundled 10^7-element one.
LIMITS = {
    "MAX_FILE_BYTES": _limit("MAX_FILE_BYTES", 64 << 20),
    "MAX_DEPTH": _limit("MAX_DEPTH", 32),  # the deepest generated file nests 8 levels
    "MAX_SCALAR_CHARS": _limit("MAX_SCALAR_CHARS", 10_000),
    "MAX_ELEMENTS": _limit("MAX_ELEMENTS", 10**8),  # per tensor; a file may declare four times as many in all
    "MAX_STEPS": _limit("MAX_STEPS", 10_000),
}


def unbounded(text: str) -> str | None:
    """Why a YAML text may not be expanded, or None: anchors and aliases (the kit writes none, and each alias can
    multiply what follows), nesting past ``MAX_DEPTH``, a scalar past ``MAX_SCALAR_CHARS``.  One pass over
    libyaml's events, which expands nothing."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=YAML_LOADER):
            line = event.start_mark.line + 1
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                return f"YAML anchors and aliases are not allowed (line {line})"
            if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                depth += 1
                if depth > LIMITS["MAX_DEPTH"]:
                    return f"nested deeper than {LIMITS['MAX_DEPTH']} levels (line {line}; ADAM_CONFORMANCE_MAX_DEPTH)"
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                depth -= 1
            elif isinstance(event, yaml.ScalarEvent) and len(event.value) > LIMITS["MAX_SCALAR_CHARS"]:
                return (f"a scalar of {len(event.value)} characters at line {line} (at most "
                        f"{LIMITS['MAX_SCALAR_CHARS']}; ADAM_CONFORMANCE_MAX_SCALAR_CHARS)")
    except yaml.YAMLError:
        return None  # the loader below reports it with its position
    return None


def declared(path: Path, record: dict, budget: list[int]) -> None:
    """Refuse a vector whose declared shapes or steps are past the limits, before anything is allocated."""
    vid = record["id"]
    if len(record["steps"]) > LIMITS["MAX_STEPS"]:
        raise VectorError(path, f"{len(record['steps'])} steps (at most {LIMITS['MAX_STEPS']}; ADAM_CONFORMANCE_MAX_STEPS)",
                          vid, "steps")
    for name, var in record["variables"].items():
        n = math.prod(int(d) for d in var["shape"])
        if n > LIMITS["MAX_ELEMENTS"]:
            raise VectorError(path, f"shape {var['shape']} declares {n:.3g} elements (at most {LIMITS['MAX_ELEMENTS']:.3g} "
                                    "per tensor; ADAM_CONFORMANCE_MAX_ELEMENTS)", vid, f"variables.{name}.shape")
        budget[0] -= n
        if budget[0] < 0:
            raise VectorError(path, f"the file declares more than {4 * LIMITS['MAX_ELEMENTS']:.3g} elements in all "
                                    "(ADAM_CONFORMANCE_MAX_ELEMENTS)", vid, f"variables.{name}.shape")


