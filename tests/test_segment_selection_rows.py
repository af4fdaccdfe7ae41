"""Model selection on the selection rows: above SELECTION_ROWS rows of the fitting sample,
candidates, silhouettes and bootstrap refits work on a nested deterministic subsample and
the chosen k is refined on the whole sample. The constant is patched down so a small
planted population exercises the path the 1M-customer workspaces take."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score
from threadpoolctl import threadpool_info

import engine.segment.base as base
from engine.config import SegmentationSpec
from engine.features import KEY, FeatureFrame, build_features
from engine.sample.declaration import sample_config
from engine.sample.governed import synthetic_governed
from engine.segment import content_ordered, segment
from engine.segment.silhouette import silhouette
from engine.segment.strategies import (
    KMeansStrategy,
    feature_matrix,
    informative,
    sample_indices,
)
from engine.segment.threads import single_thread, threads_for

AS_OF = date(2026, 10, 31)


@pytest.fixture(scope="module")
def planted() -> tuple[FeatureFrame, np.ndarray]:
    g, truth = synthetic_governed(2400, seed=5)
    return build_features(g, AS_OF, sample_config()), truth["group"].to_numpy()


def test_selection_on_a_subsample_chooses_the_same_k_and_refines_on_the_whole_sample(
    planted: tuple[FeatureFrame, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    ff, truth = planted
    full = KMeansStrategy(k_min=3, k_max=6, seed=7, stability_runs=3).fit(ff)
    assert full.params()["selection_rows"] == len(truth)
    monkeypatch.setattr(base, "SELECTION_ROWS", 800)
    sub = KMeansStrategy(k_min=3, k_max=6, seed=7, stability_runs=3).fit(ff)
    assert sub.params()["selection_rows"] == 800
    assert sub.k_ == full.k_ == 4
    assert sub.selection_labels_ is not None and len(sub.selection_labels_) == 800
    assert all(len(r) == 800 for r in sub.boot_labels_)
    # The published model is fitted on all 2,400 rows, not only the 800.
    assert sub.model_ is not None and len(sub.model_.labels_) == len(truth)
    assert adjusted_rand_score(truth, sub.assign(ff)) > 0.9
    assert adjusted_rand_score(full.assign(ff), sub.assign(ff)) > 0.99


def test_gates_judge_the_selection_rows_and_runs_repeat_byte_for_byte(
    planted: tuple[FeatureFrame, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    ff, _ = planted
    monkeypatch.setattr(base, "SELECTION_ROWS", 800)
    spec = SegmentationSpec(k_min=3, k_max=6, bootstrap_runs=3)
    a = segment(ff, spec, 10, 7)
    b = segment(ff, spec, 10, 7)
    assert a.valid, a.gates
    assert a.assignments.equals(b.assignments) and a.params == b.params
    assert [(g.name, g.value) for g in a.gates] == [(g.name, g.value) for g in b.gates]
    assert a.params["selection_rows"] == 800
    # The silhouette gate is the published personas' silhouette on the selection rows (of
    # the rows in content order, as segment fits them; assignments are in token order).
    kept, _ = informative(ff, list(ff.features))
    ordered = content_ordered(replace(ff, features=kept))
    x = feature_matrix(ordered, a.params["features"])
    idx = sample_indices(len(x), spec.sample_size, 7)
    rows = idx[base.selection_rows(len(idx), 7)]
    labels = (
        ordered.frame.select(KEY)
        .join(a.assignments, on=KEY, how="left", maintain_order="left")["persona_id"]
        .to_numpy()
    )
    strategy = KMeansStrategy(k=a.params["k"], seed=7).fit_matrix(x)
    z = strategy.transform(x[rows])
    gate = {g.name: g for g in a.gates}["silhouette"]
    assert gate.value == pytest.approx(silhouette(z, labels[rows], 800, 7), abs=2e-6)


def _openmp_threads() -> list[int]:
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "openmp"]


def test_single_thread_limits_the_native_pools_and_restores_them() -> None:
    before = _openmp_threads()
    with single_thread():
        assert all(n == 1 for n in _openmp_threads())
    with threads_for(10):
        assert all(n == 1 for n in _openmp_threads())
    assert _openmp_threads() == before
