"""SafeSynth SDK: the typed client for the gateway. Imports nothing heavy and nothing else of ours.

The wire models live in :mod:`safesynth.sdk.models`, the typed errors in :mod:`safesynth.sdk.errors`,
the HTTP paths in :mod:`safesynth.sdk.routes`.
"""

from safesynth.sdk.errors import (
    BudgetExhausted,
    ConfigurationError,
    Conflict,
    ConnectionFailed,
    Forbidden,
    InvalidRequest,
    InvalidResponse,
    JobFailed,
    NotAuthorized,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    SafeSynthError,
    ServerError,
    WaitTimeout,
)
from safesynth.sdk.schema import ColumnKind, ColumnSpec, DatasetSchema, PrivacyUnit

__all__ = [
    "BudgetExhausted",
    "ColumnKind",
    "ColumnSpec",
    "ConfigurationError",
    "Conflict",
    "ConnectionFailed",
    "DatasetSchema",
    "Forbidden",
    "InvalidRequest",
    "InvalidResponse",
    "JobFailed",
    "NotAuthorized",
    "NotFound",
    "PayloadTooLarge",
    "PrivacyUnit",
    "RateLimited",
    "SafeSynthError",
    "ServerError",
    "WaitTimeout",
]
