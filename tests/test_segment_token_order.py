"""Assignments come back in token order however the rows were ordered for fitting, and the
cheap paths of the segment stage give what the plain ones gave."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from engine.config import SegmentationSpec
from engine.features import KEY, FeatureFrame
from engine.segment import segment
from engine.segment import silhouette as sil
from engine.segment.base import informative


def _frame(shuffled: bool) -> FeatureFrame:
    rng = np.random.default_rng(4)
    x = np.vstack([rng.normal(c, 0.5, (300, 3)) for c in (0.0, 3.0, 6.0)])
    df = pl.DataFrame(x, schema=["a", "b", "c"]).with_columns(
        pl.Series(KEY, [f"t{i:05d}" for i in range(len(x))])
    )
    if shuffled:  # same customers, not in token order: the plain token sort is taken
        df = df.sample(fraction=1.0, shuffle=True, seed=1)
    return FeatureFrame(df.select(KEY, "a", "b", "c"), ["a", "b", "c"], [])


def test_assignments_are_in_token_order_whatever_order_the_rows_came_in() -> None:
    spec = SegmentationSpec(k_min=2, k_max=4, bootstrap_runs=3)
    by_position = segment(_frame(shuffled=False), spec, 10, 7).assignments
    by_token = segment(_frame(shuffled=True), spec, 10, 7).assignments
    assert by_position[KEY].to_list() == sorted(by_position[KEY].to_list())
    assert by_position[KEY].flags["SORTED_ASC"]
    assert by_position.columns == [KEY, "persona_id", "persona_name"]
    assert by_position.equals(by_token)
    assert by_position.equals(by_position.sort(KEY))


def test_distances_in_smaller_blocks_give_the_same_silhouettes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The block size changes how many rows each BLAS call takes, not what is summed.
    Whether the sums are then equal bit for bit depends on the BLAS kernel: OpenBLAS's
    Haswell kernel (the Intel machine) gave equal bits, its kernel on the AMD machine of
    2026-12-02 differs in the last bit (1e-16 relative). A fixed block size is what makes a
    refresh deterministic (two runs equal: tests/test_refresh_determinism.py); across
    block sizes the values agree to rounding."""
    rng = np.random.default_rng(2)
    z = np.vstack([rng.normal(c, 1.0, (1_100, 4)) for c in (0.0, 3.0, 6.0)])
    labelings = {k: rng.integers(0, k, len(z)) for k in (2, 3, 5)}
    small = sil.scored(z, labelings, 3_000, seed=7)
    again = sil.scored(z, labelings, 3_000, seed=7)
    monkeypatch.setattr(sil, "DIST_BLOCK", sil.BLOCK)
    large = sil.scored(z, labelings, 3_000, seed=7)
    for k in labelings:
        assert small[k].value == again[k].value
        assert small[k].sums.tobytes() == again[k].sums.tobytes()
        assert small[k].value == pytest.approx(large[k].value, rel=1e-12, abs=1e-15)
        np.testing.assert_allclose(small[k].sums, large[k].sums, rtol=1e-12)


@pytest.mark.parametrize(
    ("values", "verdict"),
    [
        ([1.0, 1.0, 1.0], "constant"),
        ([None, None, None], "constant"),
        ([float("nan")] * 3, "constant"),
        ([-0.0, 0.0, 0.0], "constant"),
        ([None, 1.0, 1.0], "near-constant"),  # two values (null is one), no spread
        ([float("nan"), 1.0, 1.0], "kept"),
        ([1e6, 1e6 + 1e-4, 1e6], "near-constant"),
        ([1.0, 2.0, 3.0], "kept"),
    ],
)
def test_informative_verdicts_follow_the_distinct_count(
    values: list[float | None], verdict: str
) -> None:
    df = pl.DataFrame({KEY: ["a", "b", "c"], "x": pl.Series(values, dtype=pl.Float64)})
    kept, dropped = informative(FeatureFrame(df, ["x"], []), ["x"])
    got = "kept" if kept else dropped["x"].split(":")[0]
    assert got == verdict
