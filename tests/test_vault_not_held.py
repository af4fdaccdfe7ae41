"""Which minted tokens a store does not hold yet (vault.not_held): exactly the rows whose
body is missing from the store, in their order, whatever the order, repeats and nulls of
either side (the sorted merge is an implementation detail, the answer is set membership)."""

from __future__ import annotations

import random

import polars as pl
import pytest

from engine.pseudonym.vault import not_held


def _reference(candidates: pl.DataFrame, held: pl.DataFrame) -> pl.DataFrame:
    inside = set(held["x"].drop_nulls().to_list())
    keep = [x is None or x not in inside for x in candidates["x"].to_list()]
    return candidates.filter(pl.Series(keep))


@pytest.mark.parametrize("seed", range(6))
def test_not_held_is_set_membership_in_the_candidates_order(seed: int) -> None:
    rnd = random.Random(seed)
    universe = [rnd.getrandbits(128) for _ in range(3_000)]
    held_x = rnd.sample(universe, rnd.choice([0, 1, 1_500, 3_000]))
    if seed % 2:
        held_x.sort()  # as one segment stores them
    cand_x: list[int | None] = [rnd.choice(universe) for _ in range(4_000)]
    cand_x += [None] * (seed % 3)
    rnd.shuffle(cand_x)
    candidates = pl.DataFrame(
        {"v": [f"v{i}" for i in range(len(cand_x))], "x": pl.Series(cand_x, dtype=pl.UInt128)}
    )
    held = pl.DataFrame({"x": pl.Series(held_x, dtype=pl.UInt128)})
    got = not_held(candidates, held)
    assert got.equals(_reference(candidates, held))


def test_everything_held_leaves_nothing_and_nothing_held_leaves_everything() -> None:
    xs = pl.Series("x", [5, 1, 9, 1], dtype=pl.UInt128)
    candidates = pl.DataFrame({"v": ["a", "b", "c", "b"], "x": xs})
    assert not_held(candidates, pl.DataFrame({"x": xs.unique()})).height == 0
    none = pl.DataFrame({"x": pl.Series([], dtype=pl.UInt128)})
    assert not_held(candidates, none).equals(candidates)
    some = pl.DataFrame({"x": pl.Series([1, 2], dtype=pl.UInt128)})
    assert not_held(candidates, some)["v"].to_list() == ["a", "c"]
