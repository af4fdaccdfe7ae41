"""personagov lineage: signed statements, the Merkle audit log and offline verification."""
