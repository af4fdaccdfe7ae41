"""KYC risk tiers and routing: a policy-defined ruleset compiled to Polars, queues, sinks.

Contract (owned here):
    route(features, governed, segmentation, ruleset, previous, as_of, cooldown_days) -> KycRouting
"""
