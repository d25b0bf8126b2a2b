"""Shared helpers of the kit's own tests."""

from __future__ import annotations

from pathlib import Path

from conformance.loader import Vector, verify_record
from vectors.generate import build
from vectors.scenarios import Scenario

ROOT = Path(__file__).resolve().parent.parent


def vector_from(scenario: Scenario) -> Vector:
    """A loaded, verified Vector built straight from a scenario (no file)."""
    return verify_record(Path("<memory>"), scenario.id.split("/")[0], build(scenario))
