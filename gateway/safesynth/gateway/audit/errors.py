"""The audit's typed errors: one class per stable ``code``.

Bad input to an audit (a release whose columns differ from the dataset, a design that does not belong
to the table, a table too small to audit) raises one of these; the audit never crashes on it with an
untyped exception.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AuditError",
    "ColumnsMismatch",
    "DatasetTooSmall",
    "DesignMismatch",
    "InvalidAuditInput",
]


class AuditError(Exception):
    """Base class of audit errors; ``code`` is stable and goes on the wire."""

    code: ClassVar[str] = "audit_error"

    def __init__(self, message: str, *, detail: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail: dict[str, object] = dict(detail or {})


class InvalidAuditInput(AuditError):
    """An argument is out of range or of the wrong type (names the argument)."""

    code: ClassVar[str] = "invalid_audit_input"


class ColumnsMismatch(AuditError):
    """A table's columns differ from the dataset schema (``detail`` lists missing and extra columns)."""

    code: ClassVar[str] = "columns_mismatch"


class DesignMismatch(AuditError):
    """The audit design does not belong to these tables (row count, indices or commitment differ)."""

    code: ClassVar[str] = "design_mismatch"


class DatasetTooSmall(AuditError):
    """Too few rows to make an audit design (a holdout and an audit pool need at least a few rows)."""

    code: ClassVar[str] = "dataset_too_small"
