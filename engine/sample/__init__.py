"""Realistic multi-source sample data with planted personas, privacy signals and dirt.

generate(customers, seed, out, fmt="parquet", dirt_rate=0.002, as_of=...) -> SampleSummary
"""

from engine.sample.dirt import PlantedDirt
from engine.sample.generate import GROUND_TRUTH, MANIFEST, SOURCES, SampleSummary, generate

__all__ = ["GROUND_TRUTH", "MANIFEST", "SOURCES", "PlantedDirt", "SampleSummary", "generate"]
