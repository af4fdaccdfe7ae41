"""Strategies: each one finds the planted groups; fit/assign are deterministic."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import adjusted_rand_score

from engine.config import SegmentationSpec
from engine.features import FeatureFrame, build_features
from engine.sample.declaration import sample_config
from engine.sample.governed import synthetic_governed
from engine.segment import segment
from engine.segment.io import write_segmentation
from engine.segment.strategies import (
    GaussianMixtureStrategy,
    KMeansStrategy,
    RuleBased,
    make_strategy,
    sample_indices,
)

AS_OF = date(2026, 10, 31)
DEFAULTS = Path(__file__).resolve().parents[1] / "engine" / "defaults" / "pgov.toml"

# The rules strategy bands the declared score feature and brackets the value feature.
RULES = {"score_feature": "credit_score", "value_feature": "value_proxy_log"}


@pytest.fixture(scope="module")
def planted() -> tuple[FeatureFrame, np.ndarray]:
    g, truth = synthetic_governed(1200, seed=11)
    ff = build_features(g, AS_OF, sample_config())
    assert truth["customer_id"].to_list() == ff.frame["customer_id"].to_list()
    return ff, truth["group"].to_numpy()


def test_kmeans_chooses_k_by_silhouette_and_recovers_groups(
    planted: tuple[FeatureFrame, np.ndarray],
) -> None:
    ff, truth = planted
    km = KMeansStrategy(k_min=3, k_max=6, seed=7).fit(ff)
    labels = km.assign(ff)
    assert km.k_ == 4
    assert set(km.scores_) == {3, 4, 5, 6}
    assert adjusted_rand_score(truth, labels) > 0.9


def test_kmeans_fixed_k_is_respected(planted: tuple[FeatureFrame, np.ndarray]) -> None:
    ff, _ = planted
    km = KMeansStrategy(k=6, seed=7).fit(ff)
    assert km.k_ == 6 and len(np.unique(km.assign(ff))) == 6


def test_kmeans_fits_on_a_sample_and_assigns_every_row(
    planted: tuple[FeatureFrame, np.ndarray],
) -> None:
    ff, truth = planted
    km = KMeansStrategy(k=4, sample_size=300, seed=7).fit(ff)
    labels = km.assign(ff)
    assert labels.shape == (ff.frame.height,)
    assert adjusted_rand_score(truth, labels) > 0.9


def test_gaussian_mixture_recovers_groups(planted: tuple[FeatureFrame, np.ndarray]) -> None:
    ff, truth = planted
    gmm = GaussianMixtureStrategy(k=4, seed=7).fit(ff)
    assert adjusted_rand_score(truth, gmm.assign(ff)) > 0.8


def test_rules_band_by_score_and_value(planted: tuple[FeatureFrame, np.ndarray]) -> None:
    ff, _ = planted
    rules = RuleBased(seed=7, score_column="credit_score", value_column="value_proxy_log")
    rules.fit(ff)
    labels = rules.assign(ff)
    score = ff.frame["credit_score"].to_numpy()
    risk = labels // 3
    assert (risk[score >= 670] == 0).all()
    assert (risk[(score >= 580) & (score < 670)] == 1).all()
    assert (risk[score < 580] == 2).all()
    value_bracket = labels % 3
    assert sorted(np.unique(value_bracket).tolist()) == [0, 1, 2]  # tertiles


def test_sample_indices_are_sorted_and_seeded() -> None:
    a = sample_indices(1000, 100, seed=1)
    assert (np.diff(a) > 0).all()
    assert (a == sample_indices(1000, 100, seed=1)).all()
    assert not (a == sample_indices(1000, 100, seed=2)).all()
    assert (sample_indices(50, 100, seed=1) == np.arange(50)).all()


@pytest.mark.parametrize("strategy", ["kmeans", "gmm", "rules"])
def test_same_input_gives_identical_assignments_and_bytes(
    planted: tuple[FeatureFrame, np.ndarray], strategy: str, tmp_path: Path
) -> None:
    ff, _ = planted
    k = 4 if strategy == "gmm" else None
    spec = SegmentationSpec(strategy=strategy, k=k, k_max=5, bootstrap_runs=2, **RULES)
    runs = [segment(ff, spec, 10, 7) for _ in range(2)]
    assert runs[0].assignments.equals(runs[1].assignments)
    files = [write_segmentation(s, tmp_path / str(i)) for i, s in enumerate(runs)]
    for a, b in zip(files[0], files[1], strict=True):
        assert a.read_bytes() == b.read_bytes()


def test_row_order_of_the_input_does_not_matter(
    planted: tuple[FeatureFrame, np.ndarray],
) -> None:
    ff, _ = planted
    spec = SegmentationSpec(k=4, bootstrap_runs=1)
    shuffled = ff.frame.sample(fraction=1.0, shuffle=True, seed=5).sort("customer_id")
    again = dataclasses.replace(ff, frame=shuffled)
    a = segment(ff, spec, 10, 7).assignments
    b = segment(again, spec, 10, 7).assignments
    assert a.equals(b)


def test_make_strategy_follows_the_spec() -> None:
    assert isinstance(make_strategy(SegmentationSpec(strategy="gmm"), 1), GaussianMixtureStrategy)
    assert isinstance(make_strategy(SegmentationSpec(strategy="rules"), 1), RuleBased)
    km = make_strategy(SegmentationSpec(k=5, sample_size=123, n_init=3), 9)
    assert isinstance(km, KMeansStrategy) and km.k == 5 and km.sample_size == 123 and km.seed == 9
    assert km.n_init == 3


def test_rule_bands_come_from_the_config(planted: tuple[FeatureFrame, np.ndarray]) -> None:
    ff, _ = planted
    default = segment(ff, SegmentationSpec(strategy="rules", bootstrap_runs=1, **RULES), 10, 7)
    spec = SegmentationSpec(
        strategy="rules",
        bootstrap_runs=1,
        score_thresholds=[650.0],
        value_quantiles=[0.5],
        **RULES,
    )
    two_by_two = segment(ff, spec, 10, 7)
    assert two_by_two.params["score_thresholds"] == [650.0]
    assert two_by_two.params["value_quantiles"] == [0.5]
    assert two_by_two.assignments["persona_id"].n_unique() <= 4
    assert default.assignments["persona_id"].n_unique() > 4


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"score_thresholds": [670, 580]}, "score_thresholds must be strictly ascending"),
        ({"value_quantiles": [0.5, 1.2]}, "value_quantiles must lie strictly between 0 and 1"),
        ({"k_min": 9, "k_max": 5}, "k_min (9) must not exceed k_max (5)"),
        ({"n_init": 0}, "segmentation.n_init"),
    ],
)
def test_bad_segmentation_settings_are_refused_naming_the_key(
    override: dict[str, object], message: str
) -> None:
    from engine.config import parse_config
    from engine.errors import ConfigError

    data = tomllib.loads(DEFAULTS.read_text())
    data["segmentation"].update(override)
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(data, "pgov.toml")


def test_assignments_table_shape(planted: tuple[FeatureFrame, np.ndarray]) -> None:
    ff, _ = planted
    seg = segment(ff, SegmentationSpec(k=4, bootstrap_runs=1), 10, 7)
    a = seg.assignments
    assert a.columns == ["customer_id", "persona_id", "persona_name"]
    assert a["customer_id"].to_list() == ff.frame["customer_id"].to_list()
    sizes = a.group_by("persona_id").len().sort("persona_id")["len"].to_list()
    assert sizes == sorted(sizes, reverse=True)  # ids in size order
    assert a.schema["persona_id"] == pl.Int64


def test_scaling_is_the_weighted_mean_and_std_formula_bit_for_bit() -> None:
    # scale_columns and transform work in place; the numbers must be the plain formulas'.
    from engine.segment.base import scale_columns

    rng = np.random.default_rng(4)
    x = rng.normal(size=(3_000, 6)) * rng.uniform(0.1, 1e6, 6) + rng.normal(0, 1e6, 6)
    for w in (None, rng.integers(0, 4, len(x))):
        mean, scale = scale_columns(x, w)
        want_mean = np.average(x, axis=0, weights=w)
        want_std = np.sqrt(np.average((x - want_mean) ** 2, axis=0, weights=w))
        np.testing.assert_array_equal(mean, want_mean)
        np.testing.assert_array_equal(scale, want_std)
        s = KMeansStrategy()
        s.mean_, s.scale_ = mean, scale
        np.testing.assert_array_equal(s.transform(x), (x - mean) / scale)
