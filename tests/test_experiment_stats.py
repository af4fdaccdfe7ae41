"""The statistics behind experiment analysis, against known values."""

from __future__ import annotations

import pytest
from scipy.stats import fisher_exact

from engine.experiment.stats import benjamini_hochberg, compare, holm, sample_size_per_arm


def test_sample_size_matches_the_textbook_formula() -> None:
    # 10 % -> 15 %, alpha 0.05 two-sided, power 0.8: 686 per arm (Fleiss, no continuity).
    assert sample_size_per_arm(0.10, 0.05, 0.05, 0.8) == 686
    assert sample_size_per_arm(0.10, 0.05, 0.01, 0.8) > 686


def test_large_cells_use_the_z_test_and_small_cells_fisher() -> None:
    big = compare(100, 1000, 150, 1000)
    assert big.test == "two_proportion_z"
    assert big.lift == pytest.approx(0.05)
    assert big.ci_low < 0.05 < big.ci_high
    # pooled p 0.125, z = 0.05 / sqrt(0.125 * 0.875 * 2 / 1000) = 3.381
    assert big.p_value == pytest.approx(0.000723, abs=2e-6)
    small = compare(1, 12, 6, 12)
    assert small.test == "fisher_exact"
    assert small.p_value == pytest.approx(fisher_exact([[6, 6], [1, 11]]).pvalue)


def test_empty_arm_is_no_test_not_a_crash() -> None:
    assert compare(0, 0, 3, 10).test == "none"


def test_holm_and_bh_adjustments() -> None:
    p = [0.01, 0.04, 0.03, 0.5]
    assert holm(p) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert benjamini_hochberg(p) == pytest.approx([0.04, 0.0533333, 0.0533333, 0.5], abs=1e-6)
