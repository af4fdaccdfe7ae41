"""Per-persona means are exact per-group means, treat NaN as missing, and repeat bit-for-bit."""

from __future__ import annotations

import numpy as np

from engine.segment.grouped import group_means


def test_group_means_equal_per_group_means_and_count_observed_values() -> None:
    labels = np.array([2, 0, 2, 1, 0, 2])
    values = np.array(
        [[1.0, np.nan], [2.0, 5.0], [3.0, 1.0], [4.0, np.nan], [6.0, 7.0], [5.0, 3.0]]
    )
    got = group_means(labels, values)
    assert got.labels.tolist() == [0, 1, 2]
    assert got.sizes.tolist() == [2, 1, 3]
    assert got.means[:, 0].tolist() == [4.0, 4.0, 3.0]
    assert got.means[0, 1] == 6.0 and got.means[2, 1] == 2.0
    assert np.isnan(got.means[1, 1])  # no observed value: missing, not zero
    assert got.observed.tolist() == [[2, 2], [1, 0], [3, 2]]


def test_group_means_repeat_bit_for_bit_on_large_groups() -> None:
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 6, size=400_000)
    values = rng.lognormal(size=(400_000, 3))
    first = group_means(labels, values).means
    for _ in range(3):
        assert group_means(labels, values).means.tobytes() == first.tobytes()
