"""Shared helpers of the kit's own tests."""

from __future__ import annotations

import copy
from pathlib import Path

from conformance.load.vector import Vector
from conformance.load.files import bundled_paths, load_file
from conformance.load.verify import verify_record
from vectors.generate import build
from vectors.scenarios import Scenario

ROOT = Path(__file__).resolve().parent.parent

#: API checks that no NumPy port can run, whatever it implements: check name -> the protocol's reason.
NO_AUTODIFF = "the NumPy-port protocol has no automatic differentiation (no minimize, get_gradients, get_updates)"
NUMPY_PROTOCOL = {
    **dict.fromkeys([*(f"test_minimize_var_list[{k}]" for k in ("list", "tuple", "callable")), "test_minimize_grad_loss",
                     "test_minimize_rejects_what_is_not_a_variable[ndarray]",
                     "test_minimize_rejects_what_is_not_a_variable[float]", "test_minimize_clips[norm]",
                     "test_minimize_clips[value]", "test_minimize_clips_norm_then_value", "test_get_gradients",
                     "test_get_gradients_clips", "test_get_updates"], NO_AUTODIFF),
    **dict.fromkeys([f"test_learning_rate_tensor_or_variable[{k}]" for k in ("tensor", "variable")],
                    "the NumPy-port protocol has no tensors: a hyperparameter is a float or a callable"),
    "test_from_config_custom_objects_schedule": "the NumPy-port protocol does not serialize schedules (get_config "
                                                "keeps the object)",
    "test_page_names_are_the_candidate": "the page's names are TensorFlow's; a candidate outside TensorFlow has none",
}


def bundled_vectors() -> list[Vector]:
    """Every bundled vector outside the ``scale`` family, loaded and verified."""
    out = []
    for path in bundled_paths():
        vectors, errors = load_file(path)
        assert not errors
        out += [v for v in vectors if v.family != "scale"]
    return out


def small_scale(digest: bool) -> list[Vector]:
    """The scale family at 3 * 2^12 + 5 elements: same generators, hyperparameters and steps; expectations stored
    as digests (``digest``) or as literal values."""
    from vectors.scenarios import FAMILIES

    out = []
    for scenario in FAMILIES["scale"]():
        scenario = copy.deepcopy(scenario)
        scenario.digest = digest
        n = 3 * 4096 + 5
        scenario.shapes = {name: (n,) if len(shape) == 1 else (n // 10, 10) for name, shape in scenario.shapes.items()}
        for step in scenario.steps:
            for g in step.values():
                if hasattr(g, "indices"):
                    g.indices = [i % (n // 10) for i in g.indices]
        out.append(verify_record("<test>", "scale", build(scenario)))
    return out


def vector_from(scenario: Scenario) -> Vector:
    """A loaded, verified Vector built straight from a scenario (no file)."""
    return verify_record(Path("<memory>"), scenario.id.split("/")[0], build(scenario))
