"""Parts of the scale-out executor: region mapping and region-pinned Dask clusters.

The public entry point is `engine.executor.run_all`.
"""
