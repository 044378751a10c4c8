"""The RFC 6962 / RFC 9162 Merkle tree: hashing, a compact frontier, proofs and their verification.

Leaves hash as ``SHA-256(0x00 || data)``, interior nodes as ``SHA-256(0x01 || left || right)``. A tree
of ``n`` leaves is the RFC 6962 ``MTH(D[0:n])``: its left subtree is the largest perfect subtree.

Proof generation is expressed over *perfect subtrees* (``(level, index)``: the ``2**level`` leaves from
``index * 2**level``): every range a proof needs decomposes into at most ``log2 n`` of them, so a store
that keeps the perfect-subtree hashes (each written once, when it completes) answers any proof with
``O(log^2 n)`` lookups and no recomputation. Verification follows RFC 9162 sections 2.1.3.2 and 2.1.4.2.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence

from safesynth.ledger.errors import InvalidProofError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "Coord",
    "Frontier",
    "consistency_proof",
    "consistency_ranges",
    "frontier_coords",
    "inclusion_proof",
    "inclusion_ranges",
    "leaf_hash",
    "node_hash",
    "perfect_cover",
    "range_hash",
    "root_from_leaf_hashes",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
#: The root of the empty tree: SHA-256 of the empty string.
EMPTY_ROOT = hashlib.sha256(b"").digest()

#: A perfect subtree: (level, index) covers leaves [index << level, (index + 1) << level).
Coord = tuple[int, int]
#: Looks up the hashes of perfect subtrees (level 0 = leaf hashes).
NodeLookup = Callable[[Sequence[Coord]], Mapping[Coord, bytes]]

_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data)."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return _sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class Frontier:
    """The compact range ``[0, size)``: hashes of the perfect subtrees left to right, largest first.

    Appending costs O(log n) amortised O(1) hashes; :meth:`append` reports the perfect subtrees it
    completes so that a store can persist them for later proofs.
    """

    __slots__ = ("hashes", "size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if size < 0 or len(hashes) != size.bit_count():
            raise InvalidProofError(f"a frontier of size {size} needs {size.bit_count()} hashes")
        self.size = size
        self.hashes = list(hashes)

    def copy(self) -> Frontier:
        """An independent copy."""
        return Frontier(self.size, self.hashes)

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add a leaf hash; return the perfect subtrees completed, as ``(level, index, hash)``."""
        hashes = self.hashes
        hashes.append(leaf)
        created: list[tuple[int, int, bytes]] = []
        n = self.size
        level = 0
        while n & 1:
            right = hashes.pop()
            h = _sha256(b"\x01" + hashes.pop() + right).digest()
            hashes.append(h)
            level += 1
            n >>= 1
            created.append((level, n, h))
        self.size += 1
        return created

    def root(self) -> bytes:
        """The tree head ``MTH(D[0:size])``."""
        hashes = self.hashes
        if not hashes:
            return EMPTY_ROOT
        h = hashes[-1]
        for left in reversed(hashes[:-1]):
            h = _sha256(b"\x01" + left + h).digest()
        return h


def frontier_coords(size: int) -> list[Coord]:
    """The perfect subtrees that make up ``[0, size)``, left to right."""
    return perfect_cover(0, size)


def perfect_cover(start: int, end: int) -> list[Coord]:
    """Decompose ``[start, end)`` greedily into aligned perfect subtrees, left to right."""
    if start < 0 or end < start:
        raise InvalidProofError(f"bad range [{start}, {end})")
    out: list[Coord] = []
    while start < end:
        level = (end - start).bit_length() - 1
        while start & ((1 << level) - 1):
            level -= 1
        out.append((level, start >> level))
        start += 1 << level
    return out


def range_hash(start: int, end: int, nodes: Mapping[Coord, bytes]) -> bytes:
    """``MTH(D[start:end])`` for an RFC 6962 subtree range, from its perfect subtrees' hashes."""
    cover = perfect_cover(start, end)
    if not cover:
        return EMPTY_ROOT
    h = nodes[cover[-1]]
    for coord in reversed(cover[:-1]):
        h = node_hash(nodes[coord], h)
    return h


def root_from_leaf_hashes(hashes: Iterable[bytes]) -> bytes:
    """``MTH`` of a sequence of leaf hashes."""
    frontier = Frontier()
    for h in hashes:
        frontier.append(h)
    return frontier.root()


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose hashes form the RFC 6962 audit path of ``index`` (leaf to root order)."""
    if not 0 <= index < size:
        raise InvalidProofError(f"leaf index {index} is outside a tree of size {size}")
    out: list[tuple[int, int]] = []
    start, n, m = 0, size, index
    while n > 1:
        k = _split(n)
        if m < k:
            out.append((start + k, start + n))
            n = k
        else:
            out.append((start, start + k))
            start, n, m = start + k, n - k, m - k
    out.reverse()
    return out


def consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose hashes form the RFC 6962 consistency proof from ``old_size`` to ``new_size``."""
    if not 0 <= old_size <= new_size:
        raise InvalidProofError(f"no consistency proof from size {old_size} to size {new_size}")
    if old_size in (0, new_size):
        return []
    out: list[tuple[int, int]] = []
    start, m, n, complete = 0, old_size, new_size, True
    while m != n:
        k = _split(n)
        if m <= k:
            out.append((start + k, start + n))
            n = k
        else:
            out.append((start, start + k))
            start, m, n, complete = start + k, m - k, n - k, False
    if not complete:
        out.append((start, start + n))
    out.reverse()
    return out


def _proof_from_ranges(ranges: Sequence[tuple[int, int]], lookup: NodeLookup) -> list[bytes]:
    coords = sorted({c for a, b in ranges for c in perfect_cover(a, b)})
    nodes = lookup(coords)
    missing = [c for c in coords if c not in nodes]
    if missing:
        raise InvalidProofError(f"tree nodes missing from the store: {missing[:4]}")
    return [range_hash(a, b, nodes) for a, b in ranges]


def inclusion_proof(index: int, size: int, lookup: NodeLookup) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of ``size`` leaves."""
    return _proof_from_ranges(inclusion_ranges(index, size), lookup)


def consistency_proof(old_size: int, new_size: int, lookup: NodeLookup) -> list[bytes]:
    """The consistency proof between tree sizes ``old_size`` and ``new_size``."""
    return _proof_from_ranges(consistency_ranges(old_size, new_size), lookup)


def _check_hashes(what: str, hashes: Sequence[bytes]) -> None:
    for h in hashes:
        if not isinstance(h, bytes | bytearray) or len(h) != HASH_SIZE:
            raise InvalidProofError(f"{what} holds a value that is not a {HASH_SIZE}-byte hash")


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """RFC 9162 2.1.3.2: raise InvalidProofError unless ``proof`` proves ``leaf`` at ``index``."""
    _check_hashes("the inclusion proof", [leaf, root, *proof])
    if not 0 <= index < size:
        raise InvalidProofError(f"leaf index {index} is outside a tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise InvalidProofError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise InvalidProofError("inclusion proof is shorter than the tree is deep")
    if r != root:
        raise InvalidProofError("inclusion proof does not lead to the root hash")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 2.1.4.2: raise InvalidProofError unless ``proof`` shows the old tree is a prefix."""
    _check_hashes("the consistency proof", [old_root, new_root, *proof])
    if not 0 <= old_size <= new_size:
        raise InvalidProofError(f"tree size went from {old_size} to {new_size}")
    if old_size == new_size:
        if proof:
            raise InvalidProofError("a consistency proof between equal sizes must be empty")
        if old_root != new_root:
            raise InvalidProofError("two roots for the same tree size differ")
        return
    if old_size == 0:
        if proof:
            raise InvalidProofError("a consistency proof from the empty tree must be empty")
        return
    if not proof:
        raise InvalidProofError("the consistency proof is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise InvalidProofError("consistency proof is longer than needed")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise InvalidProofError("consistency proof is shorter than needed")
    if fr != old_root:
        raise InvalidProofError("consistency proof does not lead to the old root")
    if sr != new_root:
        raise InvalidProofError("consistency proof does not lead to the new root")
