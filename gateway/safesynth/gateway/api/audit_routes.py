"""HTTP routes for audits of external tables against a registered dataset (filled by the audit work)."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["audit_router"]

audit_router = APIRouter()
