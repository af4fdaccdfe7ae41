"""k-means restarts on a subsample of a large fit's rows, then Lloyd on all of them.

Above RESTART_FROM rows a fit's n_init restarts run on RESTART_ROWS of its rows; below it
the fit is scikit-learn's own n_init restarts, unchanged. The constants are patched down so
a small planted population exercises the path the 1M-customer workspaces take."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

import engine.segment.restarts as restarts
from engine.config import SegmentationSpec
from engine.features import FeatureFrame, build_features
from engine.sample.declaration import sample_config
from engine.sample.governed import synthetic_governed
from engine.segment import segment
from engine.segment.restarts import restart_rows, restarted_kmeans
from engine.segment.strategies import KMeansStrategy

AS_OF = date(2026, 10, 31)


@pytest.fixture(scope="module")
def planted() -> tuple[FeatureFrame, np.ndarray]:
    g, truth = synthetic_governed(2400, seed=5)
    return build_features(g, AS_OF, sample_config()), truth["group"].to_numpy()


def _blobs(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 6.0, size=(k, 5))
    truth = rng.integers(0, k, size=n)
    return centres[truth] + rng.normal(0.0, 1.0, size=(n, 5)), truth


def test_a_fit_at_or_below_restart_from_rows_is_scikit_learns_own_n_init() -> None:
    z, _ = _blobs(restarts.RESTART_FROM, 5, 1)
    assert restart_rows(len(z)) == len(z)
    ours = restarted_kmeans(z, 5, 8, 7)
    theirs = KMeans(n_clusters=5, n_init=8, random_state=7).fit(z)
    np.testing.assert_array_equal(ours.cluster_centers_, theirs.cluster_centers_)
    np.testing.assert_array_equal(ours.labels_, theirs.labels_)


def test_a_large_fit_restarts_on_a_subsample_and_ends_with_lloyd_on_every_row() -> None:
    z, truth = _blobs(restarts.RESTART_FROM + 2_000, 6, 2)
    assert restart_rows(len(z)) == restarts.RESTART_ROWS < len(z)
    fit = restarted_kmeans(z, 6, 8, 7)
    # The final run labels every row of the fit, finds the planted partition, and is as
    # good a k-means solution as scikit-learn's n_init restarts on every row.
    assert len(fit.labels_) == len(z)
    assert adjusted_rand_score(truth, fit.labels_) > 0.99
    full = KMeans(n_clusters=6, n_init=8, random_state=7).fit(z)
    assert fit.inertia_ <= full.inertia_ * 1.0001
    # Same rows, same seed: the same centres, bit for bit.
    np.testing.assert_array_equal(
        fit.cluster_centers_, restarted_kmeans(z, 6, 8, 7).cluster_centers_
    )


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("data", ["blobs", "noise"])
def test_each_restart_is_scikit_learns_single_restart_fit_bit_for_bit(
    weighted: bool, data: str
) -> None:
    # The restarts call scikit-learn's init and Lloyd steps with the per-call preparation
    # done once; each must still be exactly KMeans(n_init=1, random_state=its seed).fit.
    # Noise has many local optima, so the restarts end in different places.
    rng = np.random.default_rng(9)
    z = _blobs(2_000, 6, 4)[0] if data == "blobs" else rng.normal(size=(2_000, 5))
    w = rng.integers(1, 4, size=len(z)).astype(np.float64) if weighted else None
    seeds = np.random.RandomState(7).randint(np.iinfo(np.int32).max, size=8)
    ours = restarts._restarts(z, w, 6, 8, 7)
    assert len(ours) == len(seeds)
    for s, centres in zip(seeds, ours, strict=True):
        theirs = KMeans(n_clusters=6, n_init=1, random_state=int(s)).fit(z, sample_weight=w)
        np.testing.assert_array_equal(centres, theirs.cluster_centers_)
    assert len({c.tobytes() for c in ours}) > 1 or data == "blobs"


def test_a_large_fit_is_the_best_restart_by_inertia_on_every_row_then_lloyd(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The rule written out with scikit-learn's own fits: restarts on the subsample, the
    # lowest inertia on all rows (first on ties), one Lloyd run on all rows from it.
    monkeypatch.setattr(restarts, "RESTART_FROM", 1_000)
    monkeypatch.setattr(restarts, "RESTART_ROWS", 300)
    rng = np.random.default_rng(11)
    z = rng.normal(size=(1_500, 4))
    w = rng.integers(1, 3, size=len(z)).astype(np.float64)
    sub = restarts.sample_indices(len(z), 300, 7)
    seeds = np.random.RandomState(7).randint(np.iinfo(np.int32).max, size=6)
    starts = [
        KMeans(n_clusters=5, n_init=1, random_state=int(s))
        .fit(z[sub], sample_weight=w[sub])
        .cluster_centers_
        for s in seeds
    ]
    inertia = [float((((z[:, None, :] - c[None]) ** 2).sum(2).min(1) * w).sum()) for c in starts]
    best = starts[int(np.argmin(inertia))]
    expected = KMeans(n_clusters=5, init=best, n_init=1, random_state=7).fit(z, sample_weight=w)
    fit = restarted_kmeans(z, 5, 6, 7, w)
    np.testing.assert_array_equal(fit.cluster_centers_, expected.cluster_centers_)
    np.testing.assert_array_equal(fit.labels_, expected.labels_)


def test_weights_reach_the_restarts_and_the_final_run(monkeypatch: pytest.MonkeyPatch) -> None:
    # A resample as distinct rows + multiplicities: far heavier rows pull their centre.
    monkeypatch.setattr(restarts, "RESTART_FROM", 300)
    monkeypatch.setattr(restarts, "RESTART_ROWS", 200)
    z, _ = _blobs(1_000, 1, 3)
    w = np.ones(len(z))
    heavy = z[:, 0] > np.quantile(z[:, 0], 0.9)
    w[heavy] = 50.0
    fit = restarted_kmeans(z, 1, 4, 7, w)
    np.testing.assert_allclose(fit.cluster_centers_[0], np.average(z, axis=0, weights=w))


def test_selection_with_subsampled_restarts_keeps_k_and_the_planted_personas(
    planted: tuple[FeatureFrame, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    ff, truth = planted
    full = KMeansStrategy(k_min=3, k_max=6, seed=7, stability_runs=3).fit(ff)
    # 2,400 candidate rows and ~1,500 distinct rows per refit: both restart on 400 rows.
    monkeypatch.setattr(restarts, "RESTART_FROM", 1_000)
    monkeypatch.setattr(restarts, "RESTART_ROWS", 400)
    sub = KMeansStrategy(k_min=3, k_max=6, seed=7, stability_runs=3).fit(ff)
    assert sub.params()["restart_rows"] == 400 and sub.params()["restart_from"] == 1_000
    assert sub.k_ == full.k_ == 4
    assert min(sub.stability_.values()) >= 0.75
    assert adjusted_rand_score(truth, sub.assign(ff)) > 0.9
    assert adjusted_rand_score(full.assign(ff), sub.assign(ff)) > 0.99


def test_segment_with_subsampled_restarts_repeats_byte_for_byte(
    planted: tuple[FeatureFrame, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    ff, _ = planted
    monkeypatch.setattr(restarts, "RESTART_FROM", 1_000)
    monkeypatch.setattr(restarts, "RESTART_ROWS", 400)
    spec = SegmentationSpec(k_min=3, k_max=6, bootstrap_runs=3)
    a = segment(ff, spec, 10, 7)
    b = segment(ff, spec, 10, 7)
    assert a.valid, a.gates
    assert a.assignments.equals(b.assignments) and a.params == b.params
    assert [(g.name, g.value) for g in a.gates] == [(g.name, g.value) for g in b.gates]


def test_a_shared_start_is_the_start_the_fit_would_make_itself() -> None:
    # k-means++ for k = 3..7 uses the same local trials, so a k = 6 fit may take the first
    # six centres of a k = 7 start of the same rows and seed: it must get exactly what it
    # makes alone. k = 8 has more trials and must not take k = 7's.
    z = np.random.default_rng(12).normal(size=(1_500, 5))
    w = np.random.default_rng(13).integers(1, 3, size=len(z)).astype(np.float64)
    shared = restarts.Starts()
    for k in (7, 6, 4, 3, 8, 5):
        with_shared = restarts._restarts(z, w, k, 8, 7, shared)
        alone = restarts._restarts(z, w, k, 8, 7)
        for a, b in zip(with_shared, alone, strict=True):
            np.testing.assert_array_equal(a, b)
    assert {t for _, t in shared._kept} == {restarts.local_trials(7), restarts.local_trials(8)}
    assert restarts.local_trials(3) == restarts.local_trials(7) != restarts.local_trials(8)
    # Other rows, weights or seed: another start.
    assert len(shared._kept) == 2
    restarts._restarts(z[1:], w[1:], 6, 8, 7, shared)
    restarts._restarts(z, None, 6, 8, 7, shared)
    restarts._restarts(z, w, 6, 8, 8, shared)
    assert len(shared._kept) == 5


def test_refits_sharing_starts_label_as_refits_that_do_not(
    planted: tuple[FeatureFrame, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Candidates and refits of one selection share starts; a strategy given no shared
    # starts (a fresh Starts per fit) must choose and label identically.
    ff, _ = planted
    monkeypatch.setattr(restarts, "RESTART_FROM", 1_000)
    monkeypatch.setattr(restarts, "RESTART_ROWS", 400)
    shared = KMeansStrategy(k_min=3, k_max=7, seed=7, stability_runs=3).fit(ff)
    assert len(shared.starts._kept) > 0

    class Fresh(restarts.Starts):
        def get(self, key: tuple[bytes, int], k: int) -> list[np.ndarray] | None:
            return None

    alone = KMeansStrategy(k_min=3, k_max=7, seed=7, stability_runs=3, starts=Fresh()).fit(ff)
    assert shared.params() == alone.params()
    np.testing.assert_array_equal(shared.assign(ff), alone.assign(ff))
    assert [b.tobytes() for b in shared.boot_labels_] == [b.tobytes() for b in alone.boot_labels_]
