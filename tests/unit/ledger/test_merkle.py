"""The RFC 6962 tree against published vectors, and proof generation/verification invariants."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safesynth.ledger.errors import InvalidProofError
from safesynth.ledger.merkle import (
    EMPTY_ROOT,
    Coord,
    Frontier,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

VECTORS = Path(__file__).parent / "vectors"
# RFC 6962 section 2.1.3 reference tree (also used by transparency-dev/merkle's testdata).
RFC_LEAVES = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
]
RFC_ROOT = "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
# Roots of the first n leaves of the reference tree (certificate-transparency-go / transparency-dev).
RFC_ROOTS = {
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: RFC_ROOT,
}


def _b(text: str) -> bytes:
    return base64.b64decode(text)


def _lookup_for(hashes: list[bytes]) -> Any:
    def lookup(coords: Any) -> dict[Coord, bytes]:
        return {(lv, i): root_from_leaf_hashes(hashes[i << lv : (i + 1) << lv]) for lv, i in coords}

    return lookup


RFC_HASHES = [leaf_hash(bytes.fromhex(x)) for x in RFC_LEAVES]


def test_rfc6962_reference_roots() -> None:
    assert root_from_leaf_hashes([]) == EMPTY_ROOT
    for n, root in RFC_ROOTS.items():
        assert root_from_leaf_hashes(RFC_HASHES[:n]).hex() == root


def test_domain_separation() -> None:
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    assert node_hash(a, b) != leaf_hash(a + b)
    assert leaf_hash(b"") == bytes.fromhex("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")


def _load(name: str) -> list[dict[str, Any]]:
    data = json.loads((VECTORS / name).read_text())
    return list(data["vectors"])


@pytest.mark.parametrize("vec", _load("inclusion.json"), ids=lambda v: v["file"])
def test_transparency_dev_inclusion_vectors(vec: dict[str, Any]) -> None:
    proof = [_b(p) for p in vec["proof"] or []]
    args = (_b(vec["leafHash"]), vec["leafIdx"], vec["treeSize"], proof, _b(vec["root"]))
    if vec["wantErr"]:
        with pytest.raises(InvalidProofError):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)
        if vec["treeSize"] <= 8 and _b(vec["root"]) == root_from_leaf_hashes(RFC_HASHES[: vec["treeSize"]]):
            assert inclusion_proof(vec["leafIdx"], vec["treeSize"], _lookup_for(RFC_HASHES)) == proof


@pytest.mark.parametrize("vec", _load("consistency.json"), ids=lambda v: v["file"])
def test_transparency_dev_consistency_vectors(vec: dict[str, Any]) -> None:
    proof = [_b(p) for p in vec["proof"] or []]
    args = (vec["size1"], vec["size2"], _b(vec["root1"]), _b(vec["root2"]), proof)
    if vec["wantErr"]:
        with pytest.raises(InvalidProofError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)
        assert consistency_proof(vec["size1"], vec["size2"], _lookup_for(RFC_HASHES)) == proof


def test_all_proofs_up_to_33_leaves() -> None:
    for n in range(1, 34):
        hashes = [leaf_hash(bytes([i])) for i in range(n)]
        lookup = _lookup_for(hashes)
        root = root_from_leaf_hashes(hashes)
        for i in range(n):
            proof = inclusion_proof(i, n, lookup)
            verify_inclusion(hashes[i], i, n, proof, root)
            if i + 1 < n:
                with pytest.raises(InvalidProofError):
                    verify_inclusion(hashes[i], i + 1, n, proof, root)
        for m in range(n + 1):
            old = root_from_leaf_hashes(hashes[:m])
            verify_consistency(m, n, old, root, consistency_proof(m, n, lookup))


def test_frontier_reports_completed_subtrees() -> None:
    f = Frontier()
    created: list[tuple[int, int, bytes]] = []
    for h in RFC_HASHES:
        created.extend(f.append(h))
    assert f.root().hex() == RFC_ROOT
    assert [(lv, i) for lv, i, _ in created] == [(1, 0), (1, 1), (2, 0), (1, 2), (1, 3), (2, 1), (3, 0)]
    assert created[-1][2].hex() == RFC_ROOT
    with pytest.raises(InvalidProofError):
        Frontier(3, [RFC_HASHES[0]])


def test_bad_sizes_refused() -> None:
    lookup = _lookup_for(RFC_HASHES)
    with pytest.raises(InvalidProofError):
        inclusion_proof(8, 8, lookup)
    with pytest.raises(InvalidProofError):
        consistency_proof(5, 4, lookup)
    root = root_from_leaf_hashes(RFC_HASHES)
    with pytest.raises(InvalidProofError):
        verify_consistency(8, 8, root, root, [root])
    with pytest.raises(InvalidProofError):
        verify_consistency(0, 8, EMPTY_ROOT, root, [root])
    verify_consistency(0, 8, EMPTY_ROOT, root, [])


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 300), data=st.data())
def test_any_single_bit_flip_breaks_a_proof(n: int, data: st.DataObject) -> None:
    hashes = [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
    lookup = _lookup_for(hashes)
    root = root_from_leaf_hashes(hashes)
    i = data.draw(st.integers(0, n - 1))
    proof = inclusion_proof(i, n, lookup)
    verify_inclusion(hashes[i], i, n, proof, root)
    if proof:
        k = data.draw(st.integers(0, len(proof) - 1))
        bit = data.draw(st.integers(0, 255))
        bad = bytearray(proof[k])
        bad[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(InvalidProofError):
            verify_inclusion(hashes[i], i, n, [*proof[:k], bytes(bad), *proof[k + 1 :]], root)
    m = data.draw(st.integers(1, n))
    cproof = consistency_proof(m, n, lookup)
    old = root_from_leaf_hashes(hashes[:m])
    verify_consistency(m, n, old, root, cproof)
    if cproof:
        with pytest.raises(InvalidProofError):
            verify_consistency(m, n, old, root, cproof[:-1])
