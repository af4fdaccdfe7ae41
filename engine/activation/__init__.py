"""Activation: a persona version's audiences delivered to a declared destination.

    activate(ws, version_ref, destination, actor) -> ActivationReport

See engine.activation.deliver for the flow; policy in engine.activation.policy.
"""
