"""Persona profiles: plain-word traits, unique readable names, KPIs with k-anonymity."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import polars as pl
import pytest

from engine.config import SegmentationSpec
from engine.enforce import GovernedFrames
from engine.features import build_features
from engine.sample.declaration import sample_config
from engine.sample.governed import synthetic_governed
from engine.segment import segment
from engine.segment.model import Segmentation
from engine.segment.profiles import unique_names

AS_OF = date(2026, 10, 31)


@pytest.fixture(scope="module")
def run() -> tuple[GovernedFrames, pl.DataFrame, Segmentation]:
    g, truth = synthetic_governed(1000, seed=5)
    seg = segment(
        build_features(g, AS_OF, sample_config()), SegmentationSpec(k=4, bootstrap_runs=1), 10, 7, g
    )
    return g, truth, seg


def _persona_of_group(seg: Segmentation, truth: pl.DataFrame, group: int) -> int:
    j = seg.assignments.join(truth, on="customer_id").filter(pl.col("group") == group)
    return int(j["persona_id"].mode().sort()[0])


def test_profiles_describe_the_planted_groups(
    run: tuple[GovernedFrames, pl.DataFrame, Segmentation],
) -> None:
    _, truth, seg = run
    by_id = {p.persona_id: p for p in seg.personas}
    trader = by_id[_persona_of_group(seg, truth, 2)]
    assert trader.name.endswith("trader")
    assert "high crypto trading" in trader.traits
    business = by_id[_persona_of_group(seg, truth, 1)]
    assert business.name.endswith("microbusiness")
    assert business.descriptors["customer_type"].startswith("smb")
    stressed = by_id[_persona_of_group(seg, truth, 3)]
    assert "high-risk" in stressed.name
    assert stressed.kpis["default_rate"] is not None
    assert (
        stressed.kpis["default_rate"] > by_id[_persona_of_group(seg, truth, 0)].kpis["default_rate"]
    )  # type: ignore[operator]


def test_sizes_shares_and_centroids(run: tuple[GovernedFrames, pl.DataFrame, Segmentation]) -> None:
    _, _, seg = run
    assert sum(p.size for p in seg.personas) == seg.assignments.height
    assert sum(p.share for p in seg.personas) == pytest.approx(1.0, abs=1e-5)
    assert [p.persona_id for p in seg.personas] == list(range(len(seg.personas)))
    for p in seg.personas:
        assert set(p.centroid) == set(seg.population)
    names = seg.assignments.group_by("persona_id").agg(pl.col("persona_name").first())
    assert dict(names.iter_rows()) == {p.persona_id: p.name for p in seg.personas}


def test_names_are_unique_within_a_version() -> None:
    names = unique_names(
        [
            (["high-value", "low-risk", "steady"], "trader"),
            (["high-value", "low-risk", "new"], "trader"),
            (["high-value", "low-risk"], "trader"),
            ([], "customer"),
            ([], "customer"),
        ]
    )
    assert len(set(names)) == len(names)
    assert names[0] == "high-value low-risk trader"
    assert names[1] == "high-value low-risk new trader"
    assert names[2] == "high-value low-risk trader 2"
    assert names[3:] == ["customer", "customer 2"]


def test_segmentation_names_are_unique(
    run: tuple[GovernedFrames, pl.DataFrame, Segmentation],
) -> None:
    _, _, seg = run
    seg8 = segment(
        build_features(run[0], AS_OF, sample_config()),
        SegmentationSpec(k=8, bootstrap_runs=1),
        10,
        7,
        run[0],
    )
    for s in (seg, seg8):
        names = [p.name for p in s.personas]
        assert len(set(names)) == len(names)


def test_kpi_cells_below_k_are_suppressed_and_recorded(
    run: tuple[GovernedFrames, pl.DataFrame, Segmentation],
) -> None:
    g, truth, _ = run
    # Keep loans for only a handful of the trader group's customers: their loan KPIs
    # then rest on fewer than k people.
    trader_tokens = truth.filter(pl.col("group") == 2)["customer_id"].head(5)
    others = truth.filter(pl.col("group") != 2)["customer_id"]
    loans = g.frames["loans"].filter(
        pl.col("customer_id").is_in(pl.concat([trader_tokens, others]).implode())
    )
    g2 = replace(g, frames={**g.frames, "loans": loans})
    k = 10
    seg2 = segment(
        build_features(g2, AS_OF, sample_config()),
        SegmentationSpec(k=4, bootstrap_runs=1),
        k,
        7,
        g2,
    )
    trader = next(p for p in seg2.personas if p.name.endswith("trader"))
    assert trader.kpis["avg_loan_amount"] is None
    assert trader.kpis["conversion_rate"] is not None
    hits = [
        s
        for s in seg2.suppressed
        if s["table"] == "persona_kpis"
        and s["cell"] == {"persona_id": str(trader.persona_id), "kpi": "avg_loan_amount"}
    ]
    assert hits and hits[0]["k"] == k and hits[0]["reason"] == "k_anonymity_below_minimum"
    assert "value" not in hits[0]  # the suppressed figure itself is never recorded


def test_kpis_absent_without_outcome_data(
    run: tuple[GovernedFrames, pl.DataFrame, Segmentation],
) -> None:
    g, _, _ = run
    frames = {k: v for k, v in g.frames.items() if k not in ("outcomes", "loans")}
    frames["bureau"] = frames["bureau"].drop("delinquencies_24m")
    g2 = replace(g, frames=frames)
    seg = segment(
        build_features(g2, AS_OF, sample_config()),
        SegmentationSpec(k=4, bootstrap_runs=1),
        10,
        7,
        g2,
    )
    for p in seg.personas:
        # The sample declares value_proxy with sum = false: its mean only.
        assert set(p.kpis) == {"value_proxy"}
    seg_no_gov = segment(
        build_features(g2, AS_OF, sample_config()), SegmentationSpec(k=4, bootstrap_runs=1), 10, 7
    )
    assert all(set(p.kpis) <= {"value_proxy"} for p in seg_no_gov.personas)


def test_kpi_intervals_bracket_the_mean_and_follow_suppression(
    run: tuple[GovernedFrames, pl.DataFrame, Segmentation],
) -> None:
    """Each published KPI has a 95% interval around its value; a suppressed KPI has none."""
    _, _, seg = run
    seen = 0
    for p in seg.personas:
        assert set(p.kpi_intervals) == set(p.kpis)
        for kpi, value in p.kpis.items():
            bounds = p.kpi_intervals[kpi]
            if value is None:
                assert bounds is None
                continue
            assert bounds is not None
            low, high = bounds
            assert low <= value <= high
            seen += 1
            if kpi.endswith("_rate") and 0 < value < 1:
                assert low < value < high  # a share strictly inside (0, 1) has spread
    assert seen > 0
