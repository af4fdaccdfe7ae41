"""Segmentation: strategies (rules, k-means, GMM), validation gates, persona profiles.

Contract (owned here):
    segment(features: FeatureFrame, spec: SegmentationSpec, k_min: int, seed: int) -> Segmentation
"""
