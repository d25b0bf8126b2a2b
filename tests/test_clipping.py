"""Clipping in apply_gradients (ADAM-CLIP-APPLY-1): the oracle's clipping against exact arithmetic, the vectors'
exactness, the reference port as a candidate (TF 2.0: no clipping there) and as the judge replays it, the
``PerReplicaClipping`` deviation, and the loader's one-line errors for the ``clipping`` field."""

from __future__ import annotations

import copy
import math
from fractions import Fraction

import mpmath
import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import reference
from conformance.adapters.numpy_port import NumpyPortAdapter
from conformance.features import Feature
from conformance.load.files import load_file
from conformance.load.limits import YAML_LOADER
from conformance.load.vector_format import gradients_at, oracle_states
from reference import adam, variants
from vectors import generate

CLIPPING = yaml.load((generate.VECTOR_DIR / "clipping.yaml").read_text(encoding="utf-8"), Loader=YAML_LOADER)


def _exact_clip(kind: str, c: float, grads: dict[str, list[float]]) -> dict[str, list[Fraction]]:
    """ADAM-CLIP-APPLY-1 in rational arithmetic (the vectors' norms are rational: Pythagorean, powers of two)."""
    c = Fraction(c)
    g = {n: [Fraction(x) for x in v] for n, v in grads.items()}

    def root(x: Fraction) -> Fraction:
        r = Fraction(math.isqrt(x.numerator), math.isqrt(x.denominator))
        assert r * r == x, "the vectors' norms are exact"
        return r

    if kind == "clipvalue":
        return {n: [min(max(x, -c), c) for x in v] for n, v in g.items()}
    if kind == "clipnorm":
        out = {}
        for n, v in g.items():
            total = sum(x * x for x in v)
            out[n] = v if total <= c * c else [x * c / root(total) for x in v]
        return out
    total = sum(x * x for v in g.values() for x in v)
    return g if total <= c * c else {n: [x * c / root(total) for x in v] for n, v in g.items()}


@pytest.mark.parametrize("record", CLIPPING["vectors"], ids=lambda r: r["id"])
def test_the_oracle_clips_each_step_as_exact_arithmetic_does(record):
    """The oracle's states equal those of the same vector without clipping, fed the exactly clipped gradients: the
    clipping is done before the update, once, with the norms the exact values have."""
    (kind, c), = record["clipping"].items()
    plain = {k: v for k, v in copy.deepcopy(record).items() if k != "clipping"}
    clipped_any = False
    for s, step in enumerate(plain["steps"]):
        grads = {n: np.asarray(g["dense"], dtype=np.float64).reshape(-1).tolist() for n, g in step["gradients"].items()}
        exact = _exact_clip(kind, c, grads)
        clipped_any |= exact != {n: [Fraction(x) for x in v] for n, v in grads.items()}
        for n, g in step["gradients"].items():
            shape = np.shape(g["dense"])
            g["dense"] = np.array([float(x) for x in exact[n]]).reshape(shape).tolist()
            assert all(Fraction(float(x)) == x for x in exact[n])  # exact in float64, so the comparison is exact
    assert clipped_any, "every clipping vector clips something"
    for want, have in zip(oracle_states(plain), oracle_states(record)):
        for name in record["variables"]:
            for f in ("variable", "m", "v"):
                np.testing.assert_array_equal(have[name][f], want[name][f])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.floats(-1e3, 1e3).filter(lambda x: x == 0 or abs(x) >= 2.0**-200), min_size=1,
                         max_size=4), min_size=1, max_size=3), st.floats(1e-2, 1e2))
def test_global_clipping_matches_mpmath(tensors, clipnorm):
    """global_clipnorm scales every tensor by clipnorm / max(N, clipnorm), N the norm of all of them together."""
    grads = {i: np.array(t) for i, t in enumerate(tensors)}
    clipped = adam.clip_in_apply(grads, global_clipnorm=clipnorm)
    with mpmath.workdps(60):
        norm = mpmath.sqrt(mpmath.fsum(mpmath.mpf(x) ** 2 for t in tensors for x in t))
        scale = mpmath.mpf(clipnorm) / max(norm, mpmath.mpf(clipnorm))
        for i, t in enumerate(tensors):
            n = sum(len(u) for u in tensors)
            np.testing.assert_allclose(clipped[i], [float(mpmath.mpf(x) * scale) for x in t],
                                       rtol=(n + 4) * 2.0**-53, atol=0)


def test_clip_in_apply_by_kind():
    """clipnorm per tensor, global_clipnorm over all, clipvalue per element; one argument at a time."""
    g = {"a": np.array([3.0, -4.0]), "b": np.array([0.0, 1.0])}
    np.testing.assert_array_equal(adam.clip_in_apply(g, clipnorm=2.5)["a"], [1.5, -2.0])
    np.testing.assert_array_equal(adam.clip_in_apply(g, clipnorm=2.5)["b"], [0.0, 1.0])  # inside: unchanged
    # N = sqrt(26): every tensor scaled, b too although it is inside the ball on its own.
    assert adam.clip_in_apply(g, global_clipnorm=2.5)["b"][1] < 1.0
    np.testing.assert_array_equal(adam.clip_in_apply(g, clipvalue=2.0)["a"], [2.0, -2.0])
    assert adam.clip_in_apply({"z": np.zeros(3)}, clipnorm=1.0)["z"].tolist() == [0.0, 0.0, 0.0]


def test_the_reference_candidate_follows_tf2_and_the_judge_clips():
    """reference.Adam as a candidate is TF 2.0's port: apply_gradients does not clip (ADAM-TF2-CLIP-1) and it has no
    global_clipnorm; the judge's replay (variants.judging) clips as the vector asks."""
    def step(cls, **clip):
        var = np.array([1.0, -2.0])
        opt = cls(learning_rate=0.125, beta_1=0.5, beta_2=0.75, epsilon=2.0**-20, **clip)
        opt.apply_gradients([(np.array([3.0, -4.0]), var)])
        return opt.get_slot(var, "m")

    np.testing.assert_array_equal(step(reference.Adam, clipnorm=2.5), [1.5, -2.0])  # (1 - 0.5) * g: not clipped
    with pytest.raises(TypeError, match="global_clipnorm"):
        reference.Adam(global_clipnorm=1.0)
    judged = variants.judging(reference.Adam)
    assert judged is not reference.Adam and not reference.Adam.clips_in_apply_gradients
    np.testing.assert_array_equal(step(judged, clipnorm=2.5), [0.75, -1.0])
    np.testing.assert_array_equal(step(judged, global_clipnorm=1.25), [0.375, -0.5])
    np.testing.assert_array_equal(step(judged, clipvalue=1.0), [0.5, -0.5])
    np.testing.assert_array_equal(step(judged), [1.5, -2.0])  # no argument: nothing to clip


def test_per_replica_clipping_is_the_clipped_halves_summed():
    """PerReplicaClipping applies clip(G/2) + clip(G/2): 2 replicas, even split, as Keras 3 under MirroredStrategy."""
    assert variants.PerReplicaClipping in variants.WRONG
    assert variants.deviation("PerReplicaClipping").clips_in_apply_gradients
    assert variants.judging(variants.PerReplicaClipping) is variants.PerReplicaClipping

    def m(cls, g, **clip):
        var = np.zeros(len(g))
        opt = cls(learning_rate=0.125, beta_1=0.5, beta_2=0.75, epsilon=2.0**-20, **clip)
        opt.apply_gradients([(np.array(g), var)])
        return opt.get_slot(var, "m") * 2  # (1 - beta_1) = 1/2: m * 2 is the gradient the update used

    wrong, right = variants.PerReplicaClipping, variants.judging(reference.Adam)
    # |G| = 5, clipnorm 2.5: each half [1.5, -2] is on the ball, so nothing is clipped (the spec halves G).
    np.testing.assert_array_equal(m(wrong, [3.0, -4.0], clipnorm=2.5), [3.0, -4.0])
    np.testing.assert_array_equal(m(right, [3.0, -4.0], clipnorm=2.5), [1.5, -2.0])
    # |G| = 10: each half is clipped to norm 2.5, the sum has norm 5, twice clipnorm.
    np.testing.assert_array_equal(m(wrong, [6.0, -8.0], global_clipnorm=2.5), [3.0, -4.0])
    np.testing.assert_array_equal(m(wrong, [3.0, -0.5], clipvalue=1.0), [2.0, -0.5])
    np.testing.assert_array_equal(m(right, [3.0, -0.5], clipvalue=1.0), [1.0, -0.5])
    # Inside the ball, or without clipping, it is the spec.
    np.testing.assert_array_equal(m(wrong, [0.75, 1.0], clipnorm=2.5), m(right, [0.75, 1.0], clipnorm=2.5))
    np.testing.assert_array_equal(m(wrong, [3.0, -4.0]), [3.0, -4.0])
    assert variants.composable(variants.PerReplicaClipping, variants.SquaredDuplicates,
                               variants.EpsilonZeroKept, variants.HyperparametersNotCast)


def test_candidates_that_do_not_clip_in_apply_gradients_are_unsupported():
    """Feature.CLIPPING: a NumPy port must declare it; reference.Adam (TF 2.0) does not, PerReplicaClipping does."""
    vector = next(v for v in load_file(generate.VECTOR_DIR / "clipping.yaml")[0] if v.id == "clipping/clipnorm")
    assert Feature.CLIPPING in vector.features
    reason = NumpyPortAdapter(reference.Adam).unsupported(vector, "float32")
    assert reason and "clips_in_apply_gradients" in reason and "ADAM-TF2-CLIP-1" in reason
    assert NumpyPortAdapter(variants.PerReplicaClipping).unsupported(vector, "float32") is None
    dense = next(v for v in load_file(generate.VECTOR_DIR / "dense.yaml")[0] if v.id == "dense/basic")
    assert Feature.CLIPPING not in dense.features


def _load_edited(tmp_path, edit, family="clipping", index=0):
    document = yaml.load((generate.VECTOR_DIR / f"{family}.yaml").read_text(encoding="utf-8"), Loader=YAML_LOADER)
    record = document["vectors"][index]
    edit(record)
    record["sha256"] = generate.content_hash(record)  # consistent but wrong: the field itself must be refused
    path = tmp_path / f"{family}.yaml"
    path.write_text(generate.render(document), encoding="utf-8")
    vectors, errors = load_file(path)
    assert len(errors) == 1 and len(vectors) == len(document["vectors"]) - 1, errors
    message = str(errors[0])
    assert "\n" not in message and message.startswith(f"{path}: vector '{record['id']}': ")
    return message


@pytest.mark.parametrize("edit,expected", [
    (lambda v: v.update(clipping={"clipnorm": -1.0}), "field 'clipping.clipnorm': -1.0 is less than or equal to"),
    (lambda v: v.update(clipping={"clipnorm": 2.5, "clipvalue": 1.0}), "field 'clipping': "),
    (lambda v: v.update(clipping={"clipnorm": "big"}), "field 'clipping.clipnorm': 'big' is not of type 'number'"),
    (lambda v: v.update(clipping={"clipnorm": 3.0}),
     "field 'steps[0].gradients.a': its clipped values are not exact in float32 with clipnorm 3.0: the error model "
     "has no term for a rounded norm (spec E)"),
    (lambda v: v.update(clipping={"clipnorm": 0.1}), "field 'clipping.clipnorm': clipnorm is not exact in float32"),
    (lambda v: v.update(clipping={"global_clipnorm": 3.0}),
     "field 'clipping.global_clipnorm': 1 / global_clipnorm is not exact in float32"),
], ids=["negative", "two arguments", "not a number", "inexact clipped values", "inexact value", "inexact inverse"])
def test_bad_clipping_is_one_line_naming_the_field(tmp_path, edit, expected):
    assert expected in _load_edited(tmp_path, edit)


def test_clipping_with_a_sparse_gradient_is_refused(tmp_path):
    message = _load_edited(tmp_path, lambda v: v.update(clipping={"clipvalue": 1.0}), family="sparse")
    assert "field 'steps[0].gradients.a': clipping with a sparse gradient is not specified" in message


def test_the_norm_must_be_exact(tmp_path):
    def edit(v):
        v["steps"][0]["gradients"]["a"]["dense"] = [1.0, 1.0]  # norm sqrt(2) > 1: irrational

    def clip_one(v):
        edit(v)
        v["clipping"] = {"clipnorm": 1.0}

    assert "field 'steps[0].gradients.a': its norm is not exact in float32" in _load_edited(tmp_path, clip_one)


def test_the_clipping_gradients_are_those_the_vectors_store():
    """The oracle reads the gradients of a clipping vector as any other (dense, float64): only clipped after."""
    record = CLIPPING["vectors"][0]
    np.testing.assert_array_equal(gradients_at(record, 0)["a"], [3.0, -4.0])
