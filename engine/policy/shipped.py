"""The digest of the policy bundle shipped with this release (policies/, installed as
engine/_bundle). The default bundle is used only if it hashes to this value: a deleted,
truncated or edited shipped module is a refusal, not a weaker decision.

After an approved change to policies/, update it to what
`python -c "from engine.policy import load_bundle; print(load_bundle('policies').digest)"`
prints (tests/test_policy_bundle_signing.py fails with that value until you do).
"""

SHIPPED_BUNDLE_DIGEST = "ff8529a67c9572f59daa840b0c3b4bc05914cfddfa753f1b5e50721ced0dade8"
