"""The sample's declaration (engine/defaults/pgov.toml) as a WorkspaceConfig, for code that
works on sample-shaped frames without a workspace (tests, benchmarks, synthetic data)."""

from __future__ import annotations

import functools
import tomllib
from importlib import resources

from engine.config import WorkspaceConfig, parse_config


@functools.lru_cache(maxsize=1)
def sample_config() -> WorkspaceConfig:
    text = resources.files("engine").joinpath("defaults", "pgov.toml").read_text(encoding="utf-8")
    return parse_config(tomllib.loads(text), "default pgov.toml")
