"""personagov engine: governed persona refreshes from multi-source customer data."""

from engine.allocator import configure as _configure_allocator

# Before any submodule imports Polars: its allocator reads this once, when it loads.
_configure_allocator()

__version__ = "0.1.0"
