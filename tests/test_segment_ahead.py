"""The steps after a k-means fit, started for the best-scoring candidate while its stability
is checked (engine/segment/ahead.py), give the segmentation the usual path gives: when that
candidate is chosen (the early work is used) and when another is (it is dropped)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any, ClassVar

import numpy as np
import polars as pl
import pytest
from threadpoolctl import threadpool_info

import engine.segment as segment_module
import engine.segment.restarts as restarts
from engine.config import SegmentationSpec
from engine.features import FeatureFrame, build_features
from engine.sample.declaration import sample_config
from engine.sample.governed import synthetic_governed
from engine.segment import Segmentation, segment
from engine.segment.ahead import Early

AS_OF = date(2026, 10, 31)


@pytest.fixture(scope="module")
def planted() -> FeatureFrame:
    g, _ = synthetic_governed(2400, seed=5)
    return build_features(g, AS_OF, sample_config())


class _Spy(Early):
    """Early that records which k it ran for and whether its work was taken."""

    runs: ClassVar[list[int]] = []
    used: ClassVar[list[bool]] = []

    def __call__(self, k: int, final: Callable[[int], Any]) -> Callable[[], Any]:
        _Spy.runs.append(k)
        return super().__call__(k, final)

    def taken(self, k: int) -> Any:
        got = super().taken(k)
        _Spy.used.append(got is not None)
        return got


class _Never(Early):
    """No early work: the usual path."""

    def __call__(self, k: int, final: Callable[[int], Any]) -> Callable[[], Any]:
        return lambda: final(k)


def _same(a: Segmentation, b: Segmentation) -> None:
    assert a.assignments.equals(b.assignments)
    assert a.params == b.params
    assert a.personas == b.personas
    assert a.suppressed == b.suppressed and a.population == b.population
    assert [(g.name, g.value, g.passed) for g in a.gates] == [
        (g.name, g.value, g.passed) for g in b.gates
    ]


def _both(
    ff: FeatureFrame, spec: SegmentationSpec, monkeypatch: pytest.MonkeyPatch
) -> tuple[Segmentation, Segmentation]:
    _Spy.runs, _Spy.used = [], []
    monkeypatch.setattr(segment_module, "Early", _Spy)
    early = segment(ff, spec, 10, 7)
    monkeypatch.setattr(segment_module, "Early", _Never)
    usual = segment(ff, spec, 10, 7)
    return early, usual


def test_the_chosen_best_candidate_uses_the_early_work_with_the_same_result(
    planted: FeatureFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The 1M workspaces' path: candidates and refits restart on a subsample.
    monkeypatch.setattr(restarts, "RESTART_FROM", 1_000)
    monkeypatch.setattr(restarts, "RESTART_ROWS", 400)
    spec = SegmentationSpec(k_min=3, k_max=6, bootstrap_runs=3)
    blas = [(i["filepath"], i["num_threads"]) for i in threadpool_info()]
    early, usual = _both(planted, spec, monkeypatch)
    assert _Spy.runs[-1] == early.params["k"] and _Spy.used == [True]
    _same(early, usual)
    assert early.valid and any(p.stability is not None for p in early.personas)
    # BLAS is back at the thread counts it had.
    assert [(i["filepath"], i["num_threads"]) for i in threadpool_info()] == blas


def test_an_unstable_best_candidate_hands_the_early_work_to_the_next_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two identical pairs of close blobs, far apart: silhouette prefers k = 3, whose merged
    # pair is unstable under resampling; k = 4 is checked next and chosen
    # (tests/test_segment_selection.py).
    rng = np.random.default_rng(0)
    pair = np.vstack([rng.normal(c, 0.3, (150, 2)) for c in [(0.0, 0.0), (2.0, 0.0)]])
    x = np.vstack([pair, pair + np.array([20.0, 20.0])])
    df = pl.DataFrame(x, schema=["f0", "f1"]).with_columns(
        customer_id=pl.Series([f"t{i:06d}" for i in range(len(x))])
    )
    ff = FeatureFrame(df.select("customer_id", "f0", "f1"), ["f0", "f1"], [])
    spec = SegmentationSpec(k_min=3, k_max=5, bootstrap_runs=6, stability_threshold=0.9)
    early, usual = _both(ff, spec, monkeypatch)
    assert _Spy.runs == [3, 4] and early.params["k"] == 4 and _Spy.used == [True]
    _same(early, usual)


def test_when_no_candidate_is_stable_the_early_work_of_another_is_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Noise: no candidate is stable, the most stable of the three checked is kept; it is
    # not the last one checked, whose early work is then dropped.
    x = np.random.default_rng(1).normal(size=(800, 6))
    cols = [f"f{i}" for i in range(6)]
    df = pl.DataFrame(x, schema=cols).with_columns(
        customer_id=pl.Series([f"t{i:06d}" for i in range(len(x))])
    )
    ff = FeatureFrame(df.select("customer_id", *cols), cols, [])
    spec = SegmentationSpec(k_min=4, k_max=8, bootstrap_runs=3)
    early, usual = _both(ff, spec, monkeypatch)
    assert len(_Spy.runs) == 3 and early.params["k_choice"].startswith("no candidate stable")
    assert early.params["k"] != _Spy.runs[-1] and _Spy.used == [False]
    _same(early, usual)


def test_a_failure_in_the_early_work_is_raised_only_when_it_is_used(
    planted: FeatureFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = SegmentationSpec(k_min=3, k_max=6, bootstrap_runs=3)

    def broken(self: Early, k: int, final: Callable[[int], Any]) -> Any:
        raise RuntimeError("early work failed")

    monkeypatch.setattr(Early, "_run", broken)
    with pytest.raises(RuntimeError, match="early work failed"):
        segment(planted, spec, 10, 7)
