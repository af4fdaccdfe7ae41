"""Declared features: spec (pgov.toml vocabulary), compile (Polars expressions), build.

The package entry stays light so engine.config can import the spec without pulling in the
enforcement stage (which itself imports engine.config).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING

from engine.features.model import KEY, FeatureFrame

if TYPE_CHECKING:
    from engine.config import WorkspaceConfig
    from engine.enforce import GovernedFrames

__all__ = ["KEY", "FeatureFrame", "build_features"]


def build_features(
    governed: GovernedFrames,
    as_of: date,
    config: WorkspaceConfig,
    done: Callable[[str], None] | None = None,
) -> FeatureFrame:
    from engine.features.build import build_features as build

    return build(governed, as_of, config, done)
