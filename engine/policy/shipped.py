"""The digest of the policy bundle shipped with this release (policies/, installed as
engine/_bundle). The default bundle is used only if it hashes to this value: a deleted,
truncated or edited shipped module is a refusal, not a weaker decision.

After an approved change to policies/, update it to what
`python -c "from engine.policy import load_bundle; print(load_bundle('policies').digest)"`
prints (tests/test_policy_bundle_signing.py fails with that value until you do).
"""

SHIPPED_BUNDLE_DIGEST = "e17fb0c310a6d0f588b30f22d8b1662aaaf2c04f83e626b59a7729338ff7192d"
