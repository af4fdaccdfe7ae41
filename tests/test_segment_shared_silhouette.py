"""Silhouettes shared between model selection and the gate equal scikit-learn's."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import silhouette_score

import engine.segment.silhouette as silhouette
from engine.config import SegmentationSpec
from engine.features import FeatureFrame
from engine.segment import segment
from engine.segment.gates import canonical_labels
from engine.segment.silhouette import scored, silhouettes
from engine.segment.strategies import feature_matrix, make_strategy, sample_indices


def test_one_distance_pass_scores_every_labelling_like_scikit_learn() -> None:
    rng = np.random.default_rng(3)
    z = np.vstack([rng.normal(c, 1.0, (2_000, 5)) for c in (0.0, 4.0, 8.0)])
    labelings = {k: rng.integers(0, k, len(z)) for k in (2, 4, 7)}
    labelings[3] = np.repeat([0, 1, 2], 2_000)
    labelings[5] = labelings[3].copy()
    labelings[5][17] = 4  # a cluster of one point scores 0, as in scikit-learn
    got = silhouettes(z, labelings, 1_500, seed=7)
    for k, labels in labelings.items():
        want = silhouette_score(z, labels, sample_size=1_500, random_state=7)
        assert abs(got[k] - want) < 1e-9, k


def test_the_gate_reports_scikit_learns_silhouette_of_the_published_personas() -> None:
    rng = np.random.default_rng(5)
    x = np.vstack([rng.normal(c, 0.5, (400, 3)) for c in (0.0, 3.0, 6.0, 9.0)])
    cols = ["a", "b", "c"]
    df = pl.DataFrame(x, schema=cols).with_columns(
        customer_id=pl.Series([f"t{i:05d}" for i in range(len(x))])
    )
    features = FeatureFrame(df.select("customer_id", *cols), cols, [])
    spec = SegmentationSpec(k_min=3, k_max=5, bootstrap_runs=3)
    seg = segment(features, spec, 10, 7)
    gate = {g.name: g for g in seg.gates}["silhouette"]
    strategy = make_strategy(spec, 7)
    m = feature_matrix(features)
    strategy.fit_matrix(m)
    idx = sample_indices(len(m), spec.sample_size, 7)
    labels = canonical_labels(strategy.predict_matrix(m))[idx]
    z = strategy.transform(m[idx])
    want = silhouette_score(z, labels, sample_size=min(5_000, len(z)), random_state=7)
    assert gate.value == round(want, 6)


def test_a_near_copy_of_a_scored_labelling_is_rescored_without_a_new_pass() -> None:
    from engine.segment.silhouette import rescore, scored

    rng = np.random.default_rng(11)
    z = np.vstack([rng.normal(c, 1.0, (1_000, 4)) for c in (0.0, 3.0, 6.0, 9.0)])
    base = np.repeat([0, 1, 2, 3], 1_000)
    [kept] = scored(z, {4: base}, 1_500, seed=7).values()
    moved = base.copy()
    moved[rng.choice(len(z), 60, replace=False)] = rng.integers(0, 4, 60)  # a few change
    relabelled = np.array([7, 2, 9, 4])[moved]  # other label values, same partition
    merged = np.where(moved == 3, 2, moved)  # two clusters become one
    split = moved.copy()
    split[:40] = 5  # a new cluster made only of moved rows
    for labels in (base, moved, relabelled, merged, split):
        want = silhouette_score(z, labels, sample_size=1_500, random_state=7)
        got = rescore(kept, labels)
        assert got is not None and abs(got - want) < 1e-9
    # Most rows elsewhere: a full pass is as cheap, so rescore declines.
    assert rescore(kept, rng.integers(0, 4, len(z))) is None
    assert rescore(kept, np.zeros(len(z), dtype=np.int64)) is None  # one cluster: none exists


def test_the_distance_pass_on_two_threads_gives_the_one_thread_sums_bit_for_bit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 1,337 rows: the halves split on a block boundary and the last block is a short one.
    rng = np.random.default_rng(8)
    z = rng.normal(size=(1_337, 6))
    labelings = {k: rng.integers(0, k, len(z)) for k in (3, 5)}
    monkeypatch.setattr(silhouette, "PASS_THREADS", 1)
    one = scored(z, labelings, None, 7)
    monkeypatch.setattr(silhouette, "PASS_THREADS", 2)
    monkeypatch.setattr(silhouette, "PASS_THREADS_FROM", 100)
    two = scored(z, labelings, None, 7)
    for k in labelings:
        np.testing.assert_array_equal(one[k].sums, two[k].sums)
        assert one[k].value == two[k].value
    want = silhouette_score(z, labelings[5])
    assert abs(two[5].value - want) < 1e-9
