"""One Lloyd run from given centres (engine.segment.lloyd) is KMeans(init=centres).fit, bit
for bit, and its model predicts as that fit's does."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning

from engine.segment.lloyd import lloyd_from


def _rows(data: str, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if data == "noise":
        return rng.normal(size=(n, 6))
    centres = rng.normal(0.0, 5.0, size=(7, 6))
    return centres[rng.integers(0, 7, size=n)] + rng.normal(size=(n, 6))


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("data", ["blobs", "noise"])
@pytest.mark.parametrize("k", [3, 7])
def test_lloyd_from_is_kmeans_fit_from_those_centres_bit_for_bit(
    weighted: bool, data: str, k: int
) -> None:
    z = _rows(data, 3_000, 3)
    rng = np.random.default_rng(4)
    w = rng.integers(1, 5, size=len(z)).astype(np.float64) if weighted else None
    # Far-off centres: the run needs many iterations, so every step's order shows.
    centres = z[rng.choice(len(z), k, replace=False)] * 1.5
    ours = lloyd_from(z, centres, 7, w)
    theirs = KMeans(n_clusters=k, init=centres, n_init=1, random_state=7).fit(z, sample_weight=w)
    assert ours.n_iter_ == theirs.n_iter_ > 1
    np.testing.assert_array_equal(ours.cluster_centers_, theirs.cluster_centers_)
    np.testing.assert_array_equal(ours.labels_, theirs.labels_)
    assert ours.inertia_ == theirs.inertia_
    other = _rows(data, 500, 8)
    np.testing.assert_array_equal(ours.predict(other), theirs.predict(other))


def test_lloyd_from_leaves_its_inputs_unchanged() -> None:
    z = _rows("blobs", 1_000, 5)
    centres = z[:4] + 0.5
    z0, c0 = z.copy(), centres.copy()
    lloyd_from(z, centres, 7)
    np.testing.assert_array_equal(z, z0)
    np.testing.assert_array_equal(centres, c0)


def test_lloyd_from_warns_as_kmeans_does_when_a_centre_loses_every_row() -> None:
    z = np.repeat(np.array([[0.0, 0.0], [10.0, 10.0]]), 50, axis=0)
    centres = np.array([[0.0, 0.0], [10.0, 10.0], [10.0, 10.0]])
    with warnings.catch_warnings(record=True) as ours:
        warnings.simplefilter("always")
        fit = lloyd_from(z, centres, 7)
    with warnings.catch_warnings(record=True) as theirs:
        warnings.simplefilter("always")
        KMeans(n_clusters=3, init=centres, n_init=1, random_state=7).fit(z)
    assert len(np.unique(fit.labels_)) == 2
    assert (
        [w.category for w in ours if w.category is ConvergenceWarning]
        == [w.category for w in theirs if w.category is ConvergenceWarning]
        != []
    )


def test_lloyd_from_leaves_bad_input_to_kmeans_and_its_error() -> None:
    z = _rows("blobs", 100, 6)
    z[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        lloyd_from(z, z[:3].copy(), 7)
