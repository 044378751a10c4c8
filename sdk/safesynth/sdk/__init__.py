"""SafeSynth SDK: the typed client for the gateway. Imports nothing heavy and nothing else of ours.

    from safesynth.sdk import Client

    with Client() as client:  # SAFESYNTH_URL / SAFESYNTH_TOKEN
        release = client.synthesize("reviews", epsilon=1.0, purpose="tests", progress=True)

The wire models live in :mod:`safesynth.sdk.models`, the typed errors in :mod:`safesynth.sdk.errors`,
the HTTP paths in :mod:`safesynth.sdk.routes`.
"""

from safesynth.sdk.async_client import AsyncClient
from safesynth.sdk.client import Client
from safesynth.sdk.errors import (
    BudgetExhausted,
    ConfigurationError,
    Conflict,
    ConnectionFailed,
    DataUnavailable,
    Forbidden,
    InvalidRequest,
    InvalidResponse,
    JobFailed,
    ModelUnavailable,
    NotAuthorized,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ReleaseWithheld,
    SafeSynthError,
    ServerError,
    WaitTimeout,
)
from safesynth.sdk.release import AsyncReleaseHandle, ReleaseHandle
from safesynth.sdk.schema import ColumnKind, ColumnSpec, DatasetSchema, PrivacyUnit

__all__ = [
    "AsyncClient",
    "AsyncReleaseHandle",
    "BudgetExhausted",
    "Client",
    "ColumnKind",
    "ColumnSpec",
    "ConfigurationError",
    "Conflict",
    "ConnectionFailed",
    "DataUnavailable",
    "DatasetSchema",
    "Forbidden",
    "InvalidRequest",
    "InvalidResponse",
    "JobFailed",
    "ModelUnavailable",
    "NotAuthorized",
    "NotFound",
    "PayloadTooLarge",
    "PrivacyUnit",
    "RateLimited",
    "ReleaseHandle",
    "ReleaseWithheld",
    "SafeSynthError",
    "ServerError",
    "WaitTimeout",
]
