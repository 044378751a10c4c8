"""Registered datasets: a private copy (0600) split once into train and holdout, a schema and a budget.

Registration reads the table (uploaded bytes, or a server-side file under an allowed root: the path
is resolved, symlinks included, and must stay inside a root) and converts it to its schema. The
audit design (:func:`safesynth.gateway.audit.design.make_design`, drawn from the OS CSPRNG) fixes once
which rows are the holdout and the audit pool: engines and DP queries only ever see the ``train``
part. The table (Parquet) and the private design are written 0600 into the home; the ledger gets a
``dataset.registered/v1`` entry (schema hash, budget as decimal strings, a row-count bucket) and an
``audit.design/v1`` entry (the design's public parts and its commitment).
Nothing private is ever returned: the public view holds the schema, a row-count bucket and the budget.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import rfc8785

from safesynth.gateway.service.db import StateDB
from safesynth.gateway.service.errors import Conflict, Forbidden, InvalidRequest, NotFound, PayloadTooLarge
from safesynth.gateway.service.files import ensure_private_dir, write_private
from safesynth.gateway.service.tables import TableFormat, read_table, to_parquet_bytes
from safesynth.gateway.settings import GatewaySettings
from safesynth.ledger.entry import decimal_string
from safesynth.sdk.schema import DatasetSchema

if TYPE_CHECKING:
    import pandas as pd

    from safesynth.gateway.service.ledger_io import LockedLedger

__all__ = ["DatasetRecord", "DatasetStore", "row_count_bucket", "schema_sha256"]

REGISTERED = "dataset.registered/v1"
DESIGN = "audit.design/v1"
_ID_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")


def row_count_bucket(rows: int) -> str:
    """A coarse, public range for a row count: ``"1000-9999"``."""
    if rows <= 0:
        return "0"
    low = 10 ** math.floor(math.log10(rows))
    return f"{low}-{low * 10 - 1}"


def schema_sha256(schema: DatasetSchema) -> str:
    """SHA-256 of the schema's RFC 8785 canonical JSON."""
    return hashlib.sha256(rfc8785.dumps(schema.model_dump(mode="json"))).hexdigest()


@dataclass(frozen=True)
class DatasetRecord:
    """A registered dataset (``rows`` and the split seed are private: never shown)."""

    id: str
    schema: DatasetSchema
    epsilon_total: float
    delta_total: float
    description: str
    rows: int
    row_bucket: str
    registered_at: datetime
    registered_seq: int
    holdout_fraction: float
    split_commitment: str

    def to_json(self) -> dict[str, Any]:
        """The stored form."""
        return {
            "id": self.id,
            "schema": self.schema.model_dump(mode="json"),
            "epsilon_total": self.epsilon_total,
            "delta_total": self.delta_total,
            "description": self.description,
            "rows": self.rows,
            "row_bucket": self.row_bucket,
            "registered_at": self.registered_at.isoformat(),
            "registered_seq": self.registered_seq,
            "holdout_fraction": self.holdout_fraction,
            "split_commitment": self.split_commitment,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> DatasetRecord:
        """Inverse of :meth:`to_json`."""
        return cls(
            id=obj["id"],
            schema=DatasetSchema.model_validate(obj["schema"]),
            epsilon_total=float(obj["epsilon_total"]),
            delta_total=float(obj["delta_total"]),
            description=obj["description"],
            rows=int(obj["rows"]),
            row_bucket=obj["row_bucket"],
            registered_at=datetime.fromisoformat(obj["registered_at"]),
            registered_seq=int(obj["registered_seq"]),
            holdout_fraction=float(obj["holdout_fraction"]),
            split_commitment=obj["split_commitment"],
        )


def _check_id(dataset: str) -> None:
    if not dataset or len(dataset) > 128 or not set(dataset) <= _ID_CHARS or not dataset[0].isalnum():
        raise InvalidRequest(f"invalid dataset id {dataset!r}")


class DatasetStore:
    """Register, list, describe and load datasets."""

    def __init__(self, settings: GatewaySettings, db: StateDB, ledger: LockedLedger) -> None:
        self._settings = settings
        self._db = db
        self._ledger = ledger
        self._cache: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = {}
        self._lock = threading.Lock()
        self._records: dict[str, DatasetRecord] = {}

    # ----------------------------------------------------------------------------- sources
    def resolve_server_path(self, raw: str) -> Path:
        """The real path of a server-side file, refused unless inside an allowed root."""
        if "\x00" in raw:
            raise InvalidRequest("the path contains a NUL byte")
        roots = [root.resolve() for root in self._settings.allowed_data_roots]
        if not roots:
            raise Forbidden("this gateway allows no server-side paths (settings: allowed_data_roots)")
        candidate = Path(raw)
        if not candidate.is_absolute():
            raise InvalidRequest("a server-side path must be absolute")
        try:
            resolved = candidate.resolve(strict=True)
        except (OSError, RuntimeError):
            raise NotFound("no such file under the allowed data roots") from None
        if not any(resolved.is_relative_to(root) for root in roots):
            raise Forbidden("the path is outside the allowed data roots")
        if not resolved.is_file():
            raise InvalidRequest("the path is not a regular file")
        if resolved.stat().st_size > self._settings.max_upload_bytes:
            raise PayloadTooLarge(f"the file is larger than {self._settings.max_upload_bytes} bytes")
        return resolved

    # ----------------------------------------------------------------------------- register
    def register(
        self,
        *,
        dataset: str,
        schema: DatasetSchema,
        epsilon_total: float,
        delta_total: float,
        source: Path | bytes,
        fmt: TableFormat,
        actor: str,
        description: str = "",
        holdout_fraction: float | None = None,
    ) -> DatasetRecord:
        """Read, convert, split and store a dataset, then record it in the ledger."""
        _check_id(dataset)
        if not (math.isfinite(epsilon_total) and epsilon_total > 0):
            raise InvalidRequest("epsilon_total must be a finite number > 0")
        if not (math.isfinite(delta_total) and 0 < delta_total < 1):
            raise InvalidRequest(
                "delta_total must be in (0, 1): the privacy filter (rdp-filter/v2) converts Renyi DP with it"
            )
        if self._db.one("SELECT id FROM datasets WHERE id = ?", (dataset,)) is not None:
            raise Conflict(f"dataset {dataset!r} is already registered")
        fraction = self._settings.holdout_fraction if holdout_fraction is None else float(holdout_fraction)
        if not 0.0 <= fraction <= 0.5:
            raise InvalidRequest("holdout_fraction must be in [0, 0.5]")
        table = read_table(
            source,
            fmt,
            schema,
            max_rows=self._settings.max_dataset_rows,
            max_field_chars=self._settings.max_field_chars,
        )
        n = len(table)
        design_json: dict[str, Any] | None = None
        design_public: dict[str, Any] | None = None
        if fraction > 0:
            from safesynth.gateway.audit.design import make_design
            from safesynth.gateway.audit.errors import AuditError

            try:
                design = make_design(n, holdout_fraction=fraction)
            except AuditError as exc:
                raise InvalidRequest(f"cannot make the audit split: {exc}") from None
            design_json, design_public = design.to_private_json(), design.to_ledger_json()
        commitment = "" if design_public is None else str(design_public["commitment"]["digest"])

        directory = self._settings.datasets_dir / dataset
        ensure_private_dir(self._settings.datasets_dir)
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            raise Conflict(f"dataset {dataset!r} is being registered") from None
        try:
            write_private(directory / "table.parquet", to_parquet_bytes(table))
            if design_json is not None:
                write_private(directory / "design.json", json.dumps(design_json).encode())
            bucket = row_count_bucket(n)
            payload = {
                "dataset": dataset,
                "schema_sha256": schema_sha256(schema),
                "columns": [{"name": c.name, "kind": c.kind.value} for c in schema.columns],
                "privacy_unit": {
                    "kind": schema.privacy_unit.kind,
                    "person_column": schema.privacy_unit.person_column,
                    "max_rows_per_person": schema.privacy_unit.max_rows_per_person,
                },
                "budget": {
                    "epsilon_total": decimal_string(float(epsilon_total)),
                    "delta_total": decimal_string(float(delta_total)),
                },
                "row_count_bucket": bucket,
                "holdout_fraction": decimal_string(fraction),
                "audit_design_commitment": commitment or None,
            }
            result = self._ledger.append(REGISTERED, payload, actor=actor)
            if design_public is not None:
                self._ledger.append(DESIGN, {"dataset": dataset, **design_public}, actor=actor)
            record = DatasetRecord(
                id=dataset,
                schema=schema,
                epsilon_total=float(epsilon_total),
                delta_total=float(delta_total),
                description=description,
                rows=n,
                row_bucket=bucket,
                registered_at=datetime.now(UTC),
                registered_seq=result.seq,
                holdout_fraction=fraction,
                split_commitment=commitment,
            )
            self._db.execute(
                "INSERT INTO datasets (id, record, created_at) VALUES (?, ?, ?)",
                (dataset, json.dumps(record.to_json()), record.registered_at.isoformat()),
            )
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        return record

    # ----------------------------------------------------------------------------- read
    def get(self, dataset: str) -> DatasetRecord:
        """The record of ``dataset``; NotFound if none. Records never change: cached once read."""
        with self._lock:
            cached = self._records.get(dataset)
        if cached is not None:
            return cached
        row = self._db.one("SELECT record FROM datasets WHERE id = ?", (dataset,))
        if row is None:
            raise NotFound(f"no dataset {dataset!r}")
        record = DatasetRecord.from_json(json.loads(row["record"]))
        with self._lock:
            self._records[dataset] = record
        return record

    def list(self) -> list[DatasetRecord]:
        """Every dataset, by id."""
        rows = self._db.query("SELECT record FROM datasets ORDER BY id")
        return [DatasetRecord.from_json(json.loads(row["record"])) for row in rows]

    def design(self, dataset: str) -> Any:
        """The dataset's private :class:`~safesynth.gateway.audit.design.AuditDesign`, or None."""
        path = self._settings.datasets_dir / dataset / "design.json"
        if not path.exists():
            return None
        from safesynth.gateway.audit.design import AuditDesign

        return AuditDesign.from_private_json(json.loads(path.read_text()))

    def load(self, dataset: str, part: str = "train") -> pd.DataFrame:
        """The private ``train`` part (what engines and queries see) or the ``holdout`` (audits only).

        Both keep the row position in the registered table as their index (the audits need it).
        Cached; callers must not modify the frames.
        """
        import pandas as pd

        if part not in ("train", "holdout"):
            raise ValueError(part)
        with self._lock:
            cached = self._cache.get(dataset)
        if cached is None:
            self.get(dataset)
            table = pd.read_parquet(self._settings.datasets_dir / dataset / "table.parquet")
            design = self.design(dataset)
            if design is None:
                cached = (table, table.iloc[0:0])
            else:
                from safesynth.gateway.audit.design import split

                cached = split(table, design)
            with self._lock:
                self._cache[dataset] = cached
        return cached[0] if part == "train" else cached[1]
