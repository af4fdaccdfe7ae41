"""Evidence packs and persona dashboards: `pgov report`.

`evidence` gathers what a version's stored, verified files say; `charts` turns it into
Vega-Lite specifications; `html` renders one self-contained page; `pdf` prints it through
headless Chromium; `trend` follows a chain of versions.
"""
