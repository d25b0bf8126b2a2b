"""The spec's clause table, read from ``spec/adam.md``: every clause id with its level."""

from __future__ import annotations

import functools
import importlib.resources
import re
from pathlib import Path

SPEC_DIR = Path(str(importlib.resources.files("spec")))
SPEC_PATH = SPEC_DIR / "adam.md"
LEVELS = ("core", "api", "tf2-detail", "later")
# What a run checks unless --level says otherwise: TF 2.0 as the page documents it.  "later" (behaviour TensorFlow
# and Keras adopted after 2.0, such as clipping in apply_gradients) is opt-in: TF 2.0 itself does not conform to it.
DEFAULT_LEVELS = LEVELS[:3]


@functools.lru_cache(maxsize=1)
def levels() -> dict[str, str]:
    """clause id -> level, from the headings ``### ADAM-... · level · title`` of the spec."""
    text = SPEC_PATH.read_text(encoding="utf-8")
    return dict(re.findall(r"^### (ADAM-[A-Z0-9-]+) · ([a-z0-9-]+) ·", text, flags=re.M))


def level_of(clauses: list[str]) -> str | None:
    """The level of a check: that of its first clause (None for an unknown clause or none)."""
    return levels().get(clauses[0]) if clauses else None
