"""Releases: synthetic tables stored content-addressed (the SHA-256 of their Parquet bytes).

A release is written once (0600) under ``releases/<sha256>.parquet``; its record (dataset, job,
spend, rows, columns, audit and quality aggregates) lives in the state database, and a ``release/v1``
ledger entry names its hash. Downloads convert to CSV (formula cells neutralized), Parquet or JSON.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safesynth.gateway.service.db import StateDB
from safesynth.gateway.service.errors import InvalidRequest, NotFound
from safesynth.gateway.service.files import ensure_private_dir, write_private
from safesynth.gateway.service.release_encoding import encode_release
from safesynth.gateway.service.tables import neutralize_formulas

if TYPE_CHECKING:
    import pandas as pd

    from safesynth.gateway.engines.base import CodedColumn

__all__ = ["MEDIA_TYPES", "ReleaseRecord", "ReleaseStore"]

MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
    "json": "application/json",
}


@dataclass(frozen=True)
class ReleaseRecord:
    """A stored release."""

    id: str
    dataset: str
    job_id: str | None
    engine: str
    rows: int
    columns: tuple[str, ...]
    spend_seq: int
    epsilon: float
    delta: float
    created: datetime
    release_seq: int | None = None
    audit: Mapping[str, Any] | None = None
    audit_verdict: str | None = None
    audit_seq: int | None = None
    quality: Mapping[str, Any] | None = None
    report: Mapping[str, Any] = field(default_factory=dict)
    #: Set when the audit gate withholds the release: its data is never served.
    withheld_reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The stored form."""
        out = dict(self.__dict__)
        out["created"] = self.created.isoformat()
        out["columns"] = list(self.columns)
        out["audit"] = None if self.audit is None else dict(self.audit)
        out["quality"] = None if self.quality is None else dict(self.quality)
        out["report"] = dict(self.report)
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> ReleaseRecord:
        """Inverse of :meth:`to_json`."""
        values = dict(obj)
        values["created"] = datetime.fromisoformat(values["created"])
        values["columns"] = tuple(values["columns"])
        return cls(**values)


class ReleaseStore:
    """Content-addressed release files plus their records."""

    def __init__(self, directory: Path, db: StateDB) -> None:
        self._dir = directory
        self._db = db

    def path(self, release_id: str) -> Path:
        """The Parquet file of a release."""
        if len(release_id) != 64 or not all(c in "0123456789abcdef" for c in release_id):
            raise NotFound(f"no release {release_id!r}")
        return self._dir / f"{release_id}.parquet"

    def write(
        self, table: pd.DataFrame, coded_columns: Mapping[str, CodedColumn] | None = None
    ) -> tuple[str, bytes]:
        """Store ``table``; return its sha256 id and Parquet bytes. ``coded_columns`` is the engine's
        hint (``EngineOutput.coded_columns``) that makes the encoding cheaper (see
        :func:`~safesynth.gateway.service.release_encoding.encode_release`)."""
        data = encode_release(table, coded_columns)
        digest = hashlib.sha256(data).hexdigest()
        ensure_private_dir(self._dir)
        target = self._dir / f"{digest}.parquet"
        if not target.exists():
            write_private(target, data)
        return digest, data

    def save(self, record: ReleaseRecord) -> ReleaseRecord:
        """Insert or update a record."""
        self._db.execute(
            "INSERT INTO releases (id, dataset, record, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET record = excluded.record",
            (record.id, record.dataset, json.dumps(record.to_json()), record.created.isoformat()),
        )
        return record

    def update(self, release_id: str, **changes: Any) -> ReleaseRecord:
        """Change fields of a record."""
        return self.save(replace(self.get(release_id), **changes))

    def get(self, release_id: str) -> ReleaseRecord:
        """The record; NotFound if none."""
        row = self._db.one("SELECT record FROM releases WHERE id = ?", (release_id,))
        if row is None:
            raise NotFound(f"no release {release_id!r}")
        return ReleaseRecord.from_json(json.loads(row["record"]))

    def list(self, datasets: set[str] | None = None) -> list[ReleaseRecord]:
        """Records (of ``datasets`` if given), newest first."""
        rows = self._db.query("SELECT record FROM releases ORDER BY created_at DESC")
        records = [ReleaseRecord.from_json(json.loads(row["record"])) for row in rows]
        return [r for r in records if datasets is None or r.dataset in datasets]

    def load(self, release_id: str) -> pd.DataFrame:
        """The release's table."""
        import pandas as pd

        path = self.path(release_id)
        if not path.exists():
            raise NotFound(f"no release {release_id!r}")
        return pd.read_parquet(path)

    def render(self, release_id: str, fmt: str) -> bytes:
        """The release as ``csv``, ``parquet`` or ``json`` bytes."""
        if fmt == "parquet":
            return self.path(release_id).read_bytes()
        table = self.load(release_id)
        if fmt == "csv":
            return neutralize_formulas(table).to_csv(index=False).encode("utf-8")
        if fmt == "json":
            buffer = io.StringIO()
            table.to_json(buffer, orient="records", force_ascii=False)
            return buffer.getvalue().encode("utf-8")
        raise InvalidRequest(f"unknown format {fmt!r}; one of csv, parquet, json")

    @staticmethod
    def now() -> datetime:
        """The current time (UTC)."""
        return datetime.now(UTC)
