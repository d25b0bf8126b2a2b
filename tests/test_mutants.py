"""Mutation testing: the vectors and checks catch every wrong variant and pass every correct one."""

from __future__ import annotations

import pytest

from conformance.diagnosis.kill_matrix import kill_matrix
from reference import variants
from tests.helpers import CLIPPING_ITEMS, NUMPY_PROTOCOL, once_per_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    return once_per_run(tmp_path_factory, "kill-matrix", lambda: kill_matrix(jobs=2))


def test_there_are_enough_variants():
    assert len(variants.WRONG) >= 20 and len(variants.CORRECT) >= 4


def test_every_wrong_variant_is_killed(matrix):
    assert matrix["survivors"] == []
    for name, entry in matrix["mutants"].items():
        assert entry["killed_by"] and entry["clause"].startswith("ADAM-"), name
    # The matrix read both ways: an item kills exactly the variants whose kill lists name it.
    for item, killers in matrix["kills_by_item"].items():
        assert sorted(killers) == sorted(n for n, e in matrix["mutants"].items() if item in e["killed_by"]), item


def test_every_correct_variant_passes_everything(matrix):
    assert matrix["correct_failing"] == []
    for name, entry in matrix["correct"].items():
        # Only what the NumPy-port protocol cannot express is unsupported (tests.helpers.NUMPY_PROTOCOL), and the
        # clipping items: the correct variants are TF 2.0's port, which does not clip in apply_gradients.
        assert entry["summary"] == {"pass": entry["summary"]["pass"], "unsupported": len(NUMPY_PROTOCOL) + len(CLIPPING_ITEMS)}, name


def test_every_vector_kills_something(matrix):
    """A vector that kills no mutant tests nothing the others do not; flagged here."""
    assert matrix["vectors_killing_nothing"] == []


#: Wrong variants that break only on kernel shapes (reference/variants.py, "kernel shapes").
KERNEL_SHAPED = ["VectorTailSkipped", "MultiTensorFirstLaunchOnly", "EmptyTensorEndsTheCall", "FlatCopyUpdate", "StridedUpdateDiscarded",
                 "FirstDtypeForTheCall", "StepSizeInFirstDtype"]


def test_per_replica_clipping_is_killed_by_the_clipping_family(matrix):
    """clip(G/2) + clip(G/2) differs from the spec only where a vector clips: the clipping family kills it."""
    killed = matrix["mutants"]["PerReplicaClipping"]["killed_by"]
    assert {k.split("/")[0] for k in killed if not k.startswith("api/")} == {"clipping"}, killed
    assert {k for k in killed if k.startswith("clipping/")} == CLIPPING_ITEMS


def test_kernel_shaped_variants_are_killed_by_the_kernels_family_and_no_other(matrix):
    for name in KERNEL_SHAPED:
        killed = matrix["mutants"][name]["killed_by"]
        assert killed and {k.split("/")[0] for k in killed} == {"kernels"}, (name, killed)
