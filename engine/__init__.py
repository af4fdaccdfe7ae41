"""personagov engine: governed persona refreshes from multi-source customer data."""

__version__ = "0.1.0"
