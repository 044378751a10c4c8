"""`safesynth ledger ...`: keys, init, status, export, verify, prove, rotate, witness cosignatures.

``verify`` and ``cosign`` need only the base install; the commands that open a store import the store
module (and through it sqlite-utils) inside the command. Exit code 0 on success, 1 on a verification
failure (with the failing step and entry), 2 on bad usage.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from safesynth.ledger.errors import LedgerError, LedgerVerificationError

if TYPE_CHECKING:
    from safesynth.ledger.keys import Verifier
    from safesynth.ledger.store import LedgerStore

__all__ = ["ledger"]

_LEDGER_HELP = "Path of the ledger store (SQLite file)."
_KEY_HELP = "Private signing key file of the ledger (PRIVATE+KEY+... format, mode 0600)."


def _emit(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=True))


def _die(exc: LedgerError, code: int = 1) -> NoReturn:
    payload: dict[str, Any] = {"ok": False, "code": exc.code, "error": str(exc)}
    if isinstance(exc, LedgerVerificationError):
        payload.update(step=exc.step, seq=exc.seq)
    click.echo(json.dumps(payload, sort_keys=True), err=True)
    sys.exit(code)


def _witness_key(path: Path) -> Verifier:
    """A witness public key file; a plain note key (type 0x01) is taken as its cosignature/v1 key."""
    from safesynth.ledger.keys import ALG_COSIGNATURE_V1, Verifier, load_verifier

    v = load_verifier(path)
    return v if v.is_witness else Verifier(v.name, v.public_key, ALG_COSIGNATURE_V1)


def _open(ledger_path: Path, key: Path | None) -> LedgerStore:
    from safesynth.ledger.keys import Signer
    from safesynth.ledger.store import LedgerStore

    signer = Signer.load(key) if key is not None else None
    return LedgerStore.open(ledger_path, signer)


_ledger_option = click.option(
    "--ledger",
    "ledger_path",
    type=click.Path(path_type=Path),
    envvar="SAFESYNTH_LEDGER",
    required=True,
    help=_LEDGER_HELP,
)


@click.group()
def ledger() -> None:
    """Export, verify and prove the privacy ledger."""


@ledger.command("keygen")
@click.option(
    "--out", type=click.Path(path_type=Path), required=True, help="Private key file to write (0600)."
)
@click.option("--name", default="safesynth-ledger", show_default=True, help="Key name (signed-note name).")
def keygen(out: Path, name: str) -> None:
    """Generate an Ed25519 key: OUT (private, 0600) and OUT.pub (verifier key line)."""
    from safesynth.ledger.keys import Signer

    try:
        signer = Signer.generate(name)
        signer.save(out)
        pub = out.with_name(out.name + ".pub")
        signer.save_public(pub)
    except LedgerError as exc:
        _die(exc, 2)
    _emit({"private_key": str(out), "public_key": str(pub), "vkey": signer.verifier().vkey()})


@ledger.command("init")
@_ledger_option
@click.option(
    "--key", type=click.Path(path_type=Path), envvar="SAFESYNTH_LEDGER_KEY", required=True, help=_KEY_HELP
)
@click.option(
    "--origin", required=True, help="The log's origin line (a unique name, e.g. example.org/safesynth)."
)
def init(ledger_path: Path, key: Path, origin: str) -> None:
    """Create an empty ledger signed by KEY."""
    from safesynth.ledger.keys import Signer
    from safesynth.ledger.store import LedgerStore

    try:
        store = LedgerStore.create(ledger_path, Signer.load(key), origin=origin)
        cp = store.latest_checkpoint()
        store.close()
    except LedgerError as exc:
        _die(exc, 2)
    _emit({"ledger": str(ledger_path), "origin": origin, "checkpoint": cp.text})


@ledger.command("append")
@_ledger_option
@click.option(
    "--key", type=click.Path(path_type=Path), envvar="SAFESYNTH_LEDGER_KEY", required=True, help=_KEY_HELP
)
@click.option("--kind", required=True, help="Versioned entry kind, e.g. note/v1.")
@click.option("--payload", default="{}", show_default=True, help="JSON object (no floats: decimal strings).")
@click.option("--actor", required=True, help="Who appends (principal or operator id).")
def append(ledger_path: Path, key: Path, kind: str, payload: str, actor: str) -> None:
    """Append one entry (operators and tests; the gateway appends through its API)."""
    from safesynth.ledger.entry import parse_json_payload

    try:
        obj = parse_json_payload(payload)
        with _open(ledger_path, key) as store:
            result = store.append(kind, obj, actor=actor)
    except LedgerError as exc:
        _die(exc, 2)
    _emit({"seq": result.seq, "checkpoint": result.checkpoint.text})


@ledger.command("status")
@_ledger_option
@click.option("--full", is_flag=True, help="Recompute every leaf, node and checkpoint (O(n)).")
def status(ledger_path: Path, full: bool) -> None:
    """Open (self-check) the ledger and print its size, origin, keys and latest checkpoint."""
    try:
        with _open(ledger_path, None) as store:
            cp = store.full_check() if full else store.latest_checkpoint()
            keys = [p.to_json() for p in store.key_history().periods]
            origin = store.origin
    except LedgerError as exc:
        _die(exc)
    _emit({"ok": True, "origin": origin, "size": cp.size, "keys": keys, "checkpoint": cp.text, "full": full})


@ledger.command("export")
@_ledger_option
@click.option(
    "--out", type=click.Path(path_type=Path), required=True, help="Directory to write (empty or new)."
)
@click.option(
    "--checkpoint-interval",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Export every N-th checkpoint (plus latest, rotations, witnessed); 1 = all.",
)
def export(ledger_path: Path, out: Path, checkpoint_interval: int) -> None:
    """Write entries, checkpoints, the key history and a manifest into OUT."""
    try:
        with _open(ledger_path, None) as store:
            summary = store.export(out, checkpoint_interval=checkpoint_interval)
    except LedgerError as exc:
        _die(exc)
    _emit(
        {
            "out": str(out),
            "tree_size": summary.tree_size,
            "root_hash": summary.root_hash,
            "checkpoints": summary.checkpoints,
        }
    )


@ledger.command("verify")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--public-key",
    type=click.Path(path_type=Path),
    envvar="SAFESYNTH_LEDGER_PUBLIC_KEY",
    required=True,
    help="The log's public (verifier) key file; any key of its history.",
)
@click.option(
    "--witness-key",
    "witness_keys",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Witness public key (repeatable).",
)
@click.option("--require-witness", is_flag=True, help="Fail unless every witness cosigned a checkpoint.")
@click.option(
    "--expect-checkpoint",
    type=click.Path(exists=True, path_type=Path),
    help="A signed checkpoint seen earlier: the export must contain that tree.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=None,
    help="Processes that check entry lines (default: automatic for large exports; 0: none).",
)
def verify(
    path: Path,
    public_key: Path,
    witness_keys: tuple[Path, ...],
    require_witness: bool,
    expect_checkpoint: Path | None,
    workers: int | None,
) -> None:
    """Verify an export directory, or a single proof bundle (JSON file), offline."""
    from safesynth.ledger.keys import load_verifier

    try:
        key = load_verifier(public_key)
        witnesses = [_witness_key(w) for w in witness_keys]
        if path.is_dir():
            from safesynth.ledger.verify import verify_export

            expected = expect_checkpoint.read_text(encoding="utf-8") if expect_checkpoint else None
            report = verify_export(
                path,
                key,
                witnesses=witnesses,
                require_witness=require_witness,
                expected_checkpoint=expected,
                workers=workers,
            )
            _emit(report.to_json())
            return
        from safesynth.ledger.proofs import InclusionProof, verify_proof_bundle

        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise LedgerVerificationError("1-bundle", None, f"{path} is not JSON: {exc}") from exc
        try:
            proof = verify_proof_bundle(obj, [key])
        except LedgerVerificationError:
            raise
        except LedgerError as exc:
            seq = obj.get("leaf_index") if isinstance(obj, dict) else None
            raise LedgerVerificationError("2-proof", seq if isinstance(seq, int) else None, str(exc)) from exc
        if isinstance(proof, InclusionProof):
            _emit({"ok": True, "type": "inclusion", "seq": proof.entry.seq, "tree_size": proof.tree_size})
        else:
            _emit({"ok": True, "type": "consistency", "old_size": proof.old.size, "new_size": proof.new.size})
    except LedgerError as exc:
        _die(exc)


@ledger.command("prove")
@_ledger_option
@click.option("--seq", type=click.IntRange(min=0), help="Inclusion proof of entry SEQ.")
@click.option("--tree-size", type=click.IntRange(min=1), help="Tree size for --seq (default: current).")
@click.option("--consistency", nargs=2, type=click.IntRange(min=0), help="Consistency proof OLD NEW.")
@click.option("--out", type=click.Path(path_type=Path), help="Write the bundle here instead of stdout.")
def prove(
    ledger_path: Path,
    seq: int | None,
    tree_size: int | None,
    consistency: tuple[int, int] | None,
    out: Path | None,
) -> None:
    """Print an inclusion (--seq) or consistency (--consistency OLD NEW) proof bundle as JSON."""
    if (seq is None) == (not consistency):
        raise click.UsageError("give exactly one of --seq or --consistency OLD NEW")
    try:
        with _open(ledger_path, None) as store:
            if seq is not None:
                bundle = store.inclusion_proof(seq, tree_size).to_json()
            else:
                assert consistency is not None
                bundle = store.consistency_proof(*consistency).to_json()
    except LedgerError as exc:
        _die(exc)
    text = json.dumps(bundle, indent=2, sort_keys=True, ensure_ascii=False)
    if out is not None:
        out.write_text(text + "\n", encoding="utf-8")
    else:
        click.echo(text)


@ledger.command("rotate-key")
@_ledger_option
@click.option(
    "--key", type=click.Path(path_type=Path), envvar="SAFESYNTH_LEDGER_KEY", required=True, help=_KEY_HELP
)
@click.option("--new-key", type=click.Path(path_type=Path), required=True, help="The new private key file.")
@click.option("--actor", required=True, help="Who rotates the key.")
def rotate_key(ledger_path: Path, key: Path, new_key: Path, actor: str) -> None:
    """Append a rotation entry signed by the current and the new key; the new key signs from then on."""
    from safesynth.ledger.keys import Signer

    try:
        with _open(ledger_path, key) as store:
            result = store.rotate_key(Signer.load(new_key), actor=actor)
    except LedgerError as exc:
        _die(exc, 2)
    _emit({"seq": result.seq, "checkpoint": result.checkpoint.text})


@ledger.command("cosign")
@click.argument("checkpoint", type=click.Path(exists=True, path_type=Path))
@click.option("--key", type=click.Path(path_type=Path), required=True, help="The witness's private key file.")
@click.option(
    "--public-key", type=click.Path(path_type=Path), required=True, help="The log's public key file."
)
def cosign(checkpoint: Path, key: Path, public_key: Path) -> None:
    """As a witness: check CHECKPOINT's log signature, print it with a cosignature/v1 line added."""
    from safesynth.ledger.checkpoint import NoteSignature, open_checkpoint
    from safesynth.ledger.keys import Signer, load_verifier

    try:
        _, note = open_checkpoint(checkpoint.read_text(encoding="utf-8"), [load_verifier(public_key)])
        witness = Signer.load(key)
        sig = NoteSignature(witness.name, witness.cosignature(note.body, int(time.time())))
        click.echo(note.with_signatures([sig]).text(), nl=False)
    except LedgerError as exc:
        _die(exc)


@ledger.command("add-cosignature")
@_ledger_option
@click.argument("note", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--witness-key", type=click.Path(path_type=Path), required=True, help="The witness's public key file."
)
def add_cosignature(ledger_path: Path, note: Path, witness_key: Path) -> None:
    """Store a witness cosignature (a note produced by `cosign`) with its checkpoint."""
    try:
        with _open(ledger_path, None) as store:
            cp = store.add_cosignature(note.read_text(encoding="utf-8"), _witness_key(witness_key))
    except LedgerError as exc:
        _die(exc)
    _emit({"size": cp.size, "checkpoint": cp.text})
