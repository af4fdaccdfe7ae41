"""Validation gates: planted structure passes, pure noise fails, small personas merge."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest

from engine.config import SegmentationSpec
from engine.features import FeatureFrame, build_features
from engine.sample.declaration import sample_config
from engine.sample.governed import synthetic_governed
from engine.segment import segment
from engine.segment.gates import (
    canonical_labels,
    jaccard_per_cluster,
    merge_small,
    min_size_gate,
)


def _gates(seg: object) -> dict[str, object]:
    return {g.name: g for g in seg.gates}  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def planted() -> FeatureFrame:
    g, _ = synthetic_governed(1000, seed=21)
    return build_features(g, date(2026, 10, 31), sample_config())


def noise_features(n: int = 1500, dims: int = 10, seed: int = 0) -> FeatureFrame:
    rng = np.random.default_rng(seed)
    cols = [f"f{i}" for i in range(dims)]
    frame = pl.DataFrame(rng.normal(size=(n, dims)), schema=cols).with_columns(
        customer_id=pl.Series([f"t{i:06d}" for i in range(n)])
    )
    return FeatureFrame(frame.select("customer_id", *cols), cols, [])


def test_planted_groups_pass_every_gate(planted: FeatureFrame) -> None:
    seg = segment(planted, SegmentationSpec(k=4, bootstrap_runs=3), 10, 7)
    gates = _gates(seg)
    assert set(gates) == {"min_size", "silhouette", "stability", "jaccard"}
    assert seg.valid, seg.gates
    assert gates["stability"].value >= 0.9  # type: ignore[attr-defined]
    assert all(p.stability is not None and p.stability >= 0.75 for p in seg.personas)


def test_pure_noise_fails_stability_and_silhouette() -> None:
    seg = segment(noise_features(), SegmentationSpec(k=6, bootstrap_runs=3), 10, 7)
    gates = _gates(seg)
    assert not gates["silhouette"].passed  # type: ignore[attr-defined]
    assert not gates["stability"].passed  # type: ignore[attr-defined]
    assert not gates["jaccard"].passed  # type: ignore[attr-defined]
    assert gates["min_size"].passed  # type: ignore[attr-defined]
    assert not seg.valid


def test_small_clusters_merge_into_the_nearest_centroid() -> None:
    z = np.array([[0.0], [0.1], [0.2], [10.0], [10.1], [10.2], [4.0]])
    labels = np.array([0, 0, 0, 1, 1, 1, 2])
    merged, merges = merge_small(labels, z, 2)
    assert merged.tolist() == [0, 0, 0, 1, 1, 1, 0]  # 4.0 is nearer 0.1 than 10.1
    assert [(m.source, m.into) for m in merges] == [(2, 0)]


def test_merging_leaves_no_persona_below_k(planted: FeatureFrame) -> None:
    k = 200  # forces the smaller of 8 clusters to merge
    seg = segment(planted, SegmentationSpec(k=8, bootstrap_runs=1), k, 7)
    sizes = [p.size for p in seg.personas]
    assert min(sizes) >= k
    assert seg.params["merged_small_clusters"] > 0
    assert _gates(seg)["min_size"].passed  # type: ignore[attr-defined]


def test_population_below_k_fails_min_size_and_is_suppressed() -> None:
    ff = noise_features(n=30)
    seg = segment(ff, SegmentationSpec(k=2, bootstrap_runs=1), 50, 7)
    assert not _gates(seg)["min_size"].passed  # type: ignore[attr-defined]
    assert len(seg.personas) == 1
    assert seg.personas[0].centroid == {} and seg.personas[0].traits == []
    assert any(s["table"] == "personas" for s in seg.suppressed)


def test_canonical_labels_order_by_size_then_first_row() -> None:
    assert canonical_labels(np.array([5, 3, 3, 5, 9, 3])).tolist() == [1, 0, 0, 1, 2, 0]
    assert canonical_labels(np.array([7, 2, 7, 2])).tolist() == [0, 1, 0, 1]


def test_jaccard_matches_best_cluster() -> None:
    ref = np.array([0, 0, 0, 1, 1, 1])
    other = np.array([1, 1, 0, 0, 0, 0])
    # ref 0 best: other 1 {0,1} -> 2/3; ref 1 best: other 0 {2,3,4,5} -> 3/4
    assert jaccard_per_cluster(ref, other) == pytest.approx([2 / 3, 3 / 4])


def test_min_size_gate_threshold() -> None:
    g = min_size_gate(np.array([0, 0, 0, 1, 1]), 3, [])
    assert not g.passed and g.value == 2 and g.threshold == 3


def test_merging_on_raw_centroids_mapped_affinely_equals_merging_standardised_rows() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 3)) * [1.0, 50.0, 0.01] + [0.0, 600.0, 0.3]
    labels = rng.integers(0, 7, size=400)
    labels[:6] = 7  # one tiny cluster
    mean, scale = x.mean(axis=0), x.std(axis=0)
    a, ma = merge_small(labels, (x - mean) / scale, 50)
    b, mb = merge_small(labels, x, 50, to_space=lambda c: (c - mean) / scale)
    assert (a == b).all() and ma == mb and ma
