"""Keys and signed notes against the golang.org/x/mod/sumdb/note reference example; checkpoints."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from safesynth.ledger.checkpoint import (
    Checkpoint,
    NoteSignature,
    SignedNote,
    open_checkpoint,
    sign_checkpoint,
)
from safesynth.ledger.errors import InvalidCheckpointError, InvalidKeyError
from safesynth.ledger.keyhistory import KeyHistory, KeyPeriod, rotation_payload, verify_rotation_payload
from safesynth.ledger.keys import Signer, Verifier, load_verifier
from safesynth.ledger.merkle import EMPTY_ROOT

# From golang.org/x/mod/sumdb/note (note_test.go / package docs), BSD-3-Clause, The Go Authors.
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
)
GO_SIG = (
    "— PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def test_reference_note_is_reproduced_byte_for_byte() -> None:
    signer = Signer.from_skey(GO_SKEY)
    assert signer.verifier().vkey() == GO_VKEY
    assert signer.key_id.hex() == "c74f20a3"
    note = SignedNote(GO_TEXT, (NoteSignature(signer.name, signer.note_signature(GO_TEXT)),))
    assert note.text() == GO_TEXT + "\n" + GO_SIG
    parsed = SignedNote.parse(GO_TEXT + "\n" + GO_SIG)
    assert parsed.verified_by([Verifier.from_vkey(GO_VKEY)]) == [Verifier.from_vkey(GO_VKEY)]
    tampered = SignedNote.parse((GO_TEXT + "\n" + GO_SIG).replace("cryptography", "cryptographY"))
    with pytest.raises(InvalidCheckpointError):
        tampered.verified_by([Verifier.from_vkey(GO_VKEY)])


def test_mangled_verifier_keys_are_refused() -> None:
    for i in range(len(GO_VKEY)):
        mangled = GO_VKEY[:i] + chr(ord(GO_VKEY[i]) + 1) + GO_VKEY[i + 1 :]
        with pytest.raises(InvalidKeyError):
            Verifier.from_vkey(mangled)
    for bad in ("", "a+b", GO_VKEY + "AA"):
        with pytest.raises(InvalidKeyError):
            Verifier.from_vkey(bad)


def test_key_files(tmp_path: Path) -> None:
    signer = Signer.generate("log.example")
    signer.save(tmp_path / "k")
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600
    with pytest.raises(InvalidKeyError):
        signer.save(tmp_path / "k")
    signer.save_public(tmp_path / "k.pub")
    assert Signer.load(tmp_path / "k").verifier() == load_verifier(tmp_path / "k.pub") == signer.verifier()
    with pytest.raises(InvalidKeyError):
        load_verifier(tmp_path / "missing")
    with pytest.raises(InvalidKeyError):
        Signer.generate("bad name")


def test_checkpoint_format_and_strict_parsing() -> None:
    cp = Checkpoint("example.org/log", 8, bytes(range(32)))
    assert cp.body() == "example.org/log\n8\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
    assert Checkpoint.parse(cp.body()) == cp
    for bad in (
        "example.org/log\n08\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
        "o\n1\nAAE=\n",
        "o\n1\n",
        "o\n-1\nx\n",
    ):
        with pytest.raises(InvalidCheckpointError):
            Checkpoint.parse(bad)


def test_sign_open_and_unknown_keys() -> None:
    log, other = Signer.generate("log"), Signer.generate("other")
    note = sign_checkpoint(Checkpoint("o", 0, EMPTY_ROOT), [log])
    cp, _ = open_checkpoint(note.text(), [log.verifier()], origin="o")
    assert cp.size == 0
    with pytest.raises(InvalidCheckpointError):
        open_checkpoint(note.text(), [other.verifier()])
    with pytest.raises(InvalidCheckpointError):
        open_checkpoint(note.text(), [log.verifier()], origin="p")
    # same name, different key: not "unknown", a bad signature
    impostor = Signer.generate("log")
    forged = SignedNote(note.body, (NoteSignature("log", log.key_id + impostor.sign(note.body.encode())),))
    with pytest.raises(InvalidCheckpointError):
        open_checkpoint(forged.text(), [log.verifier()])


def test_witness_cosignature() -> None:
    log, witness = Signer.generate("log"), Signer.generate("dpo")
    note = sign_checkpoint(Checkpoint("o", 3, EMPTY_ROOT), [log])
    cosig = NoteSignature("dpo", witness.cosignature(note.body, 1_700_000_000))
    both = SignedNote.parse(note.with_signatures([cosig]).text())
    assert both.verified_by([log.verifier(), witness.witness_verifier()]) == [
        log.verifier(),
        witness.witness_verifier(),
    ]
    # a cosignature is not a note signature by the same key (different key id / message)
    assert both.verified_by([witness.verifier()]) == []
    blob = bytearray(cosig.blob)
    blob[6] ^= 1  # the timestamp is signed
    bad = note.with_signatures([NoteSignature("dpo", bytes(blob))])
    with pytest.raises(InvalidCheckpointError):
        bad.verified_by([witness.witness_verifier()])


def test_key_history_and_rotation_payload() -> None:
    a, b = Signer.generate("a"), Signer.generate("b")
    payload = rotation_payload("o", 5, a, b)
    old, new = verify_rotation_payload("o", 5, payload)
    assert (old, new) == (a.verifier(), b.verifier())
    with pytest.raises(InvalidKeyError):
        verify_rotation_payload("o", 6, payload)
    history = KeyHistory([KeyPeriod(a.verifier(), 0, None)]).with_rotation(5, b.verifier())
    assert history.signers_for(5) == [a.verifier()]
    assert history.signers_for(6) == [a.verifier(), b.verifier()]
    assert history.signers_for(7) == [b.verifier()]
    assert KeyHistory.from_json(history.to_json()).to_json() == history.to_json()
    with pytest.raises(InvalidKeyError):
        KeyHistory([KeyPeriod(a.verifier(), 1, None)])
