"""Per-subject parts meet the subjects' frame by position (engine/features/attach.py): the
rows, order, nulls and dtypes a left join keeping the frame's order gives; a key that is
not one distinct unsigned position per row is declined (the caller joins)."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest
from test_policy_support import HmacPseudonymiser, request

import engine.features.build as build_module
from engine.enforce import enforce
from engine.enforce_subjects import needed_columns
from engine.features import build_features
from engine.features.attach import attach
from engine.policy import decide
from engine.sources import load_sources
from engine.workspace import Workspace

K = "__pos"


def _frames(seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    subjects = rng.permutation(1000)[:700].astype(np.uint32)
    frame = pl.DataFrame({K: subjects, "t": [f"tok{i}" for i in subjects]})
    # Some of the frame's subjects, some the frame lacks, in another order.
    part_keys = rng.permutation(np.r_[subjects[:400], np.arange(1000, 1050)]).astype(np.uint32)
    part = pl.DataFrame(
        {
            K: part_keys,
            "n": rng.integers(0, 9, len(part_keys)),
            "x": pl.Series(rng.random(len(part_keys))).scatter([0, 5], None),
            "s": [None if i % 7 == 0 else f"v{i}" for i in range(len(part_keys))],
            "flag": pl.Series([1] * len(part_keys), dtype=pl.Int8),
        }
    )
    return frame, part


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_attach_gives_the_left_join_in_the_frames_order(seed: int) -> None:
    frame, part = _frames(seed)
    joined = frame.join(part, on=K, how="left", maintain_order="left")
    got = attach(frame, part, K)
    assert got is not None
    assert got.equals(joined)
    assert got.schema == joined.schema
    assert got["n"].null_count() == 300  # the subjects the part lacks


def test_attach_declines_repeated_null_or_non_position_keys() -> None:
    frame, part = _frames(4)
    twice = pl.concat([part, part.head(1)])
    assert attach(frame, twice, K) is None

    def nulled(df: pl.DataFrame) -> pl.DataFrame:
        return df.with_columns(df.get_column(K).scatter(0, None))

    assert attach(frame, nulled(part), K) is None
    assert attach(nulled(frame), part, K) is None
    signed = pl.col(K).cast(pl.Int64)
    assert attach(frame.with_columns(signed), part.with_columns(signed), K) is None
    assert attach(frame, part.with_columns(pl.col(K).cast(pl.UInt64)), K) is None


def test_features_by_position_equal_features_by_join(
    sample_ws: Workspace, sample_as_of: date, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = decide(sample_ws, request("analyst-eu", "EU-DE", "marketing_segmentation"))
    sources = load_sources(sample_ws, "EU-DE", sample_as_of, needed_columns(plan, sample_ws.config))
    governed = enforce(sources, plan, HmacPseudonymiser(), sample_as_of)
    attached: list[bool] = []

    def counted(frame: pl.DataFrame, part: pl.DataFrame, key: str) -> pl.DataFrame | None:
        got = attach(frame, part, key)
        attached.append(got is not None)
        return got

    monkeypatch.setattr(build_module, "attach", counted)
    by_position = build_features(governed, sample_as_of, sample_ws.config)
    assert len(attached) >= 3 and all(attached)  # the governed frames carry positions
    monkeypatch.setattr(build_module, "attach", lambda frame, part, key: None)
    by_join = build_features(governed, sample_as_of, sample_ws.config)
    assert by_position.frame.equals(by_join.frame)
    assert by_position.frame.columns == by_join.frame.columns
