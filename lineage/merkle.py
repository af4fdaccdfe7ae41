"""RFC 6962 / RFC 9162 Merkle tree hashing, inclusion and consistency proofs.

Leaf hash ``SHA256(0x00 || d)``, node hash ``SHA256(0x01 || l || r)``; a tree of n leaves
splits at the largest power of two below n. ``MerkleTree`` keeps every level so proofs cost
O(log^2 n) hash look-ups instead of re-hashing the tree; verification functions are pure and
work offline from the proof alone. Consistency verification recomputes *both* roots: a
verifier that only checks the second root accepts proofs for a forged first tree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from engine.errors import VerificationFailed

HASH_SIZE = 32
_LEAF = b"\x00"
_NODE = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(_LEAF + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _is_pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


class MerkleTree:
    """An in-memory RFC 6962 tree over leaf hashes, with every complete level cached."""

    def __init__(self, leaf_hashes: Sequence[bytes]) -> None:
        level0 = list(leaf_hashes)
        for i, h in enumerate(level0):
            if len(h) != HASH_SIZE:
                raise ValueError(f"leaf hash {i} is {len(h)} bytes, expected {HASH_SIZE}")
        # levels[k][i] = hash of the complete subtree of 2**k leaves starting at i * 2**k.
        self._levels: list[list[bytes]] = [level0]
        cur = level0
        while len(cur) > 1:
            nxt = [node_hash(cur[i], cur[i + 1]) for i in range(0, len(cur) - 1, 2)]
            self._levels.append(nxt)
            cur = nxt

    @property
    def size(self) -> int:
        return len(self._levels[0])

    def leaf(self, index: int) -> bytes:
        return self._levels[0][index]

    def _hash(self, lo: int, hi: int) -> bytes:
        """MTH of leaves [lo, hi)."""
        n = hi - lo
        if n == 0:
            return EMPTY_ROOT
        if _is_pow2(n) and lo % n == 0:
            return self._levels[n.bit_length() - 1][lo // n]
        k = _split(n)
        return node_hash(self._hash(lo, lo + k), self._hash(lo + k, hi))

    def root(self, size: int | None = None) -> bytes:
        size = self.size if size is None else size
        if not 0 <= size <= self.size:
            raise ValueError(f"tree size {size} outside 0..{self.size}")
        return self._hash(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        size = self.size if size is None else size
        if not 0 <= index < size <= self.size:
            raise ValueError(f"no leaf {index} in a tree of size {size}")
        return self._path(index, 0, size)

    def _path(self, m: int, lo: int, hi: int) -> list[bytes]:
        n = hi - lo
        if n == 1:
            return []
        k = _split(n)
        if m < k:
            return [*self._path(m, lo, lo + k), self._hash(lo + k, hi)]
        return [*self._path(m - k, lo + k, hi), self._hash(lo, lo + k)]

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        new_size = self.size if new_size is None else new_size
        if not 0 <= old_size <= new_size <= self.size:
            raise ValueError(f"no consistency proof from {old_size} to {new_size}")
        if old_size == 0 or old_size == new_size:
            return []
        return self._subproof(old_size, 0, new_size, True)

    def _subproof(self, m: int, lo: int, hi: int, complete: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if complete else [self._hash(lo, hi)]
        k = _split(n)
        if m <= k:
            return [*self._subproof(m, lo, lo + k, complete), self._hash(lo + k, hi)]
        return [*self._subproof(m - k, lo + k, hi, False), self._hash(lo, lo + k)]


class CompactRange:
    """The right frontier of a growing tree: hashes of its perfect subtrees, left to right.

    Appending costs one node hash amortised and the root is a fold of at most log2(n) hashes,
    so a writer can take the roots of several prefix sizes in a single pass over the leaves.
    """

    def __init__(self) -> None:
        self.size = 0
        self._nodes: list[bytes] = []

    def append(self, leaf: bytes) -> None:
        self._nodes.append(leaf)
        s = self.size
        while s & 1:  # each trailing 1 bit of the old size is a perfect subtree to merge
            right = self._nodes.pop()
            self._nodes[-1] = node_hash(self._nodes[-1], right)
            s >>= 1
        self.size += 1

    def root(self) -> bytes:
        if not self._nodes:
            return EMPTY_ROOT
        r = self._nodes[-1]
        for h in reversed(self._nodes[:-1]):
            r = node_hash(h, r)
        return r


def root_from_leaves(leaf_hashes: Sequence[bytes]) -> bytes:
    """Root without keeping the levels: what a verifier recomputing a whole log needs."""
    cur = list(leaf_hashes)
    if not cur:
        return EMPTY_ROOT
    while len(cur) > 1:
        nxt = [node_hash(cur[i], cur[i + 1]) for i in range(0, len(cur) - 1, 2)]
        if len(cur) % 2:
            nxt.append(cur[-1])  # a lone right node moves up unchanged (RFC 6962 split rule)
        cur = nxt
    return cur[0]


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """RFC 9162 2.1.3.2: the root that ``proof`` implies for ``leaf`` at ``index``."""
    if not 0 <= index < size:
        raise VerificationFailed(f"inclusion proof: index {index} outside a tree of size {size}")
    if any(len(p) != HASH_SIZE for p in proof):
        raise VerificationFailed("inclusion proof: a proof hash is not 32 bytes")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise VerificationFailed("inclusion proof: too many hashes for this tree size")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationFailed("inclusion proof: too few hashes for this tree size")
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    got = root_from_inclusion_proof(index, size, leaf, proof)
    if got != root:
        raise VerificationFailed(
            f"inclusion proof: leaf {index} does not lead to the root of the tree of size {size}"
        )


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 2.1.4.2, checking that the proof reproduces the old root *and* the new root."""
    if not 0 <= old_size <= new_size:
        raise VerificationFailed(
            f"consistency proof: tree shrank from {old_size} to {new_size} entries"
        )
    if any(len(p) != HASH_SIZE for p in proof):
        raise VerificationFailed("consistency proof: a proof hash is not 32 bytes")
    if old_size == new_size:
        if proof:
            raise VerificationFailed("consistency proof: expected no hashes for equal sizes")
        if old_root != new_root:
            raise VerificationFailed(
                f"consistency proof: two different roots for the same size {old_size}"
            )
        return
    if old_size == 0:
        if proof:
            raise VerificationFailed("consistency proof: expected no hashes from an empty tree")
        return
    if not proof:
        raise VerificationFailed("consistency proof: empty proof for a growing tree")
    path = list(proof)
    if _is_pow2(old_size):
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise VerificationFailed("consistency proof: too many hashes")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationFailed("consistency proof: too few hashes")
    if fr != old_root:
        raise VerificationFailed(
            f"consistency proof: does not reproduce the root of the older tree (size {old_size})"
        )
    if sr != new_root:
        raise VerificationFailed(
            f"consistency proof: does not reproduce the root of the newer tree (size {new_size})"
        )
