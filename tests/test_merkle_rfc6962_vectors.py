"""The Merkle code reproduces the published RFC 6962 vectors (transparency-dev/merkle).

Vectors copied from transparency-dev/merkle proof/verify_test.go (leaves, roots of the first
1..8 leaves, inclusion and consistency proofs), plus their corruption probes: every altered
proof must be refused.
"""

from __future__ import annotations

import hashlib
import itertools

import pytest

from engine.errors import VerificationFailed
from lineage.merkle import (
    EMPTY_ROOT,
    CompactRange,
    MerkleTree,
    leaf_hash,
    node_hash,
    root_from_inclusion_proof,
    root_from_leaves,
    verify_consistency,
    verify_inclusion,
)


def h(x: str) -> bytes:
    return bytes.fromhex(x)


LEAVES = [
    h(""),
    h("00"),
    h("10"),
    h("2021"),
    h("3031"),
    h("40414243"),
    h("5051525354555657"),
    h("606162636465666768696a6b6c6d6e6f"),
]
ROOTS = [
    h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
    h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
    h("aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"),
    h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    h("4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"),
    h("76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"),
    h("ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"),
    h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
]
# (1-based leaf, tree size, proof)
INCLUSION = [
    (1, 1, []),
    (
        1,
        8,
        [
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        6,
        8,
        [
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (3, 3, [h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
    (
        2,
        5,
        [
            h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
]
CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        6,
        8,
        [
            h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (
        2,
        5,
        [
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
    (
        6,
        7,
        [
            h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
]
SOME_HASH = h("abacaba000000000000000000000000000000000000000000060061e00123456")

TREE = MerkleTree([leaf_hash(x) for x in LEAVES])


def test_empty_tree_root_is_sha256_of_nothing() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert MerkleTree([]).root() == EMPTY_ROOT
    assert root_from_leaves([]) == EMPTY_ROOT


@pytest.mark.parametrize("size", range(1, 9))
def test_roots_match_published_vectors(size: int) -> None:
    assert TREE.root(size) == ROOTS[size - 1]
    assert root_from_leaves([leaf_hash(x) for x in LEAVES[:size]]) == ROOTS[size - 1]


@pytest.mark.parametrize(("leaf", "size", "proof"), INCLUSION)
def test_inclusion_proofs_match_published_vectors(leaf: int, size: int, proof: list[bytes]) -> None:
    assert TREE.inclusion_proof(leaf - 1, size) == proof
    verify_inclusion(leaf - 1, size, leaf_hash(LEAVES[leaf - 1]), proof, ROOTS[size - 1])


@pytest.mark.parametrize(("size1", "size2", "proof"), CONSISTENCY)
def test_consistency_proofs_match_published_vectors(
    size1: int, size2: int, proof: list[bytes]
) -> None:
    assert TREE.consistency_proof(size1, size2) == proof
    verify_consistency(size1, size2, ROOTS[size1 - 1], ROOTS[size2 - 1], proof)


def _inclusion_probes(
    i: int, n: int, proof: list[bytes], root: bytes, lh: bytes
) -> list[tuple[int, int, bytes, bytes, list[bytes]]]:
    probes = [
        (i - 1, n, root, lh, proof),
        (i + 1, n, root, lh, proof),
        (i ^ 2, n, root, lh, proof),
        (i, n * 2, root, lh, proof),
        (i, n // 2, root, lh, proof),
        (i, n, root, b"WrongLeaf", proof),
        (i, n, EMPTY_ROOT, lh, proof),
        (i, n, SOME_HASH, lh, proof),
        (i, n, root, lh, [*proof, b""]),
        (i, n, root, lh, [*proof, root]),
        (i, n, root, lh, [b"", *proof]),
        (i, n, root, lh, [root, *proof]),
    ]
    for k in range(len(proof)):
        bad = list(proof)
        bad[k] = bytes([bad[k][0] ^ 8]) + bad[k][1:]
        probes.append((i, n, root, lh, bad))
    if proof:
        probes.append((i, n, root, lh, proof[:-1]))
    if len(proof) > 1:
        probes.append((i, n, root, lh, [proof[0], SOME_HASH, *proof[1:]]))
    return probes


@pytest.mark.parametrize(("leaf", "size", "proof"), INCLUSION[1:])
def test_corrupted_inclusion_proofs_are_refused(leaf: int, size: int, proof: list[bytes]) -> None:
    lh = leaf_hash(LEAVES[leaf - 1])
    for i, n, root, leafh, pr in _inclusion_probes(leaf - 1, size, proof, ROOTS[size - 1], lh):
        if (i, n, root, leafh, pr) == (leaf - 1, size, ROOTS[size - 1], lh, proof):
            continue  # i ^ 2 can equal i for none of these; guard anyway
        with pytest.raises(VerificationFailed):
            verify_inclusion(i, n, leafh, pr, root)


@pytest.mark.parametrize(("size1", "size2", "proof"), CONSISTENCY[1:])
def test_corrupted_consistency_proofs_are_refused(
    size1: int, size2: int, proof: list[bytes]
) -> None:
    r1, r2 = ROOTS[size1 - 1], ROOTS[size2 - 1]
    probes = [
        (size1 - 1, size2, r1, r2, proof),
        (size1 + 1, size2, r1, r2, proof),
        (size1 ^ 2, size2, r1, r2, proof),
        (size1, size2 * 2, r1, r2, proof),
        (size1, size2 // 2, r1, r2, proof),
        (size1, size2, b"WrongRoot", r2, proof),
        (size1, size2, r1, b"WrongRoot", proof),
        (size1, size2, r2, r1, proof),
        (size1, size2, r1, r2, []),
        (size1, size2, r1, r2, [*proof, b""]),
        (size1, size2, r1, r2, [*proof, r1]),
        (size1, size2, r1, r2, [*proof, r2]),
        (size1, size2, r1, r2, [b"", *proof]),
        (size1, size2, r1, r2, [r1, *proof]),
        (size1, size2, r1, r2, [r2, *proof]),
        (size1, size2, r1, r2, [proof[0], *proof]),
        (size1, size2, r1, r2, proof[:-1]),
    ]
    for k in range(len(proof)):
        bad = list(proof)
        bad[k] = bytes([bad[k][0] ^ 16]) + bad[k][1:]
        probes.append((size1, size2, r1, r2, bad))
    for s1, s2, a, b, pr in probes:
        with pytest.raises(VerificationFailed):
            verify_consistency(s1, s2, a, b, pr)


def test_consistency_edge_cases_from_the_reference_suite() -> None:
    r1, r2 = b"don't care 1", b"don't care 2"
    verify_consistency(0, 0, r1, r1, [])
    verify_consistency(0, 1, r1, r2, [])
    verify_consistency(1, 1, r2, r2, [])
    for s1, s2, a, b, pr in [
        (0, 0, r1, r2, []),
        (1, 1, r1, r2, []),
        (1, 0, r1, r2, []),
        (2, 1, r1, r2, []),
        (1, 2, r1, r2, []),
        (0, 0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]),
        (0, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]),
        (1, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]),
    ]:
        with pytest.raises(VerificationFailed):
            verify_consistency(s1, s2, a, b, pr)


def test_a_proof_that_only_fits_the_new_root_is_refused() -> None:
    """The known bug elsewhere: skipping the first-root check accepts a forged old tree."""
    proof = TREE.consistency_proof(6, 8)
    forged_old = hashlib.sha256(b"forged").digest()
    with pytest.raises(VerificationFailed, match="older tree"):
        verify_consistency(6, 8, forged_old, ROOTS[7], proof)


def _mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1 as written: the recursive definition, for cross-checking."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return node_hash(_mth(leaves[:k]), _mth(leaves[k:]))


def test_every_proof_of_every_small_tree_verifies() -> None:
    data = [bytes([i]) * (i % 5) for i in range(33)]
    tree = MerkleTree([leaf_hash(d) for d in data])
    for n in range(1, len(data) + 1):
        root = tree.root(n)
        assert root == _mth(data[:n]) == root_from_leaves([leaf_hash(d) for d in data[:n]])
        for i in range(n):
            pr = tree.inclusion_proof(i, n)
            assert root_from_inclusion_proof(i, n, tree.leaf(i), pr) == root
            assert len(pr) <= n.bit_length()
    for m, n in itertools.combinations(range(1, len(data) + 1), 2):
        verify_consistency(m, n, tree.root(m), tree.root(n), tree.consistency_proof(m, n))


def test_compact_range_roots_match_the_vectors_and_the_full_tree() -> None:
    cr = CompactRange()
    assert cr.root() == EMPTY_ROOT
    for i, leaf in enumerate(LEAVES):
        cr.append(leaf_hash(leaf))
        assert cr.root() == ROOTS[i]
    data = [leaf_hash(bytes([i])) for i in range(70)]
    tree, cr = MerkleTree(data), CompactRange()
    for i, h_ in enumerate(data):
        cr.append(h_)
        assert cr.root() == tree.root(i + 1)
