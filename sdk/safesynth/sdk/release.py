"""Handles on a synthetic release: its metadata plus ways to fetch its data, audit and quality.

``to_pandas()`` imports pandas only when called (the SDK itself never needs it).
"""

from __future__ import annotations

import importlib
import importlib.util
import io
from pathlib import Path
from typing import Any, Protocol

from safesynth.sdk.models import AuditSummary, QualitySummary, Release, ReleaseFormat

#: ``pandas.DataFrame``; typed loosely because the SDK must not import pandas (import-linter checks
#: every import statement, even inside functions, so pandas is loaded through importlib on demand).
DataFrame = Any

__all__ = ["AsyncReleaseHandle", "DataFrame", "ReleaseHandle", "frame_from_bytes"]


class _SyncReleases(Protocol):
    def content(self, release_id: str, *, format: ReleaseFormat = "csv") -> bytes: ...
    def download(self, release_id: str, path: str | Path, *, format: ReleaseFormat = "csv") -> Path: ...
    def audit(self, release_id: str) -> AuditSummary: ...
    def quality(self, release_id: str) -> QualitySummary: ...


class _AsyncReleases(Protocol):
    async def content(self, release_id: str, *, format: ReleaseFormat = "csv") -> bytes: ...
    async def download(self, release_id: str, path: str | Path, *, format: ReleaseFormat = "csv") -> Path: ...
    async def audit(self, release_id: str) -> AuditSummary: ...
    async def quality(self, release_id: str) -> QualitySummary: ...


def frame_from_bytes(data: bytes, format: ReleaseFormat) -> DataFrame:
    """Parse a downloaded release into a ``pandas.DataFrame`` (pandas is imported here, on demand)."""
    try:
        pd = importlib.import_module("pandas")
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("to_pandas() needs pandas: pip install pandas (or safesynth[gateway])") from exc
    if format == "parquet":
        return pd.read_parquet(io.BytesIO(data))
    if format == "json":
        return pd.read_json(io.BytesIO(data), orient="records")
    return pd.read_csv(io.BytesIO(data), keep_default_na=True)


def _default_frame_format() -> ReleaseFormat:
    return "parquet" if importlib.util.find_spec("pyarrow") is not None else "csv"


class ReleaseHandle:
    """A release (``.info``: the :class:`Release` model) bound to the client that fetched it."""

    def __init__(self, info: Release, releases: _SyncReleases) -> None:
        self.info = info
        self._releases = releases

    @property
    def id(self) -> str:
        """The release id (its sha256)."""
        return self.info.id

    @property
    def dataset(self) -> str:
        """The dataset the release was synthesized from."""
        return self.info.dataset

    @property
    def rows(self) -> int:
        """Number of synthetic rows."""
        return self.info.rows

    @property
    def columns(self) -> tuple[str, ...]:
        """Column names."""
        return self.info.columns

    @property
    def epsilon(self) -> float:
        """The epsilon charged for it (the gateway's accountant)."""
        return self.info.epsilon

    @property
    def delta(self) -> float:
        """The delta charged for it."""
        return self.info.delta

    @property
    def spend_seq(self) -> int:
        """The ledger seq of its spend entry."""
        return self.info.spend_seq

    def __getattr__(self, name: str) -> Any:
        # rows, columns, epsilon, delta, spend_seq, ... straight from the model.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.info, name)

    def __repr__(self) -> str:
        i = self.info
        return f"ReleaseHandle(id={i.id[:12]}..., dataset={i.dataset!r}, rows={i.rows}, eps={i.epsilon:g})"

    def content(self, *, format: ReleaseFormat = "csv") -> bytes:
        """The release's data as bytes in ``format``."""
        return self._releases.content(self.info.id, format=format)

    def to_csv(self, path: str | Path) -> Path:
        """Write the release as CSV to ``path`` (atomically); returns the path."""
        return self._releases.download(self.info.id, path, format="csv")

    def download(self, path: str | Path, *, format: ReleaseFormat = "csv") -> Path:
        """Write the release in ``format`` to ``path`` (atomically); returns the path."""
        return self._releases.download(self.info.id, path, format=format)

    def to_pandas(self, *, format: ReleaseFormat | None = None) -> DataFrame:
        """The release as a pandas DataFrame (Parquet when pyarrow is installed, else CSV)."""
        fmt = format or _default_frame_format()
        return frame_from_bytes(self._releases.content(self.info.id, format=fmt), fmt)

    def audit(self) -> AuditSummary:
        """The release's audit (aggregates only)."""
        return self._releases.audit(self.info.id)

    def quality(self) -> QualitySummary:
        """The release's quality report."""
        return self._releases.quality(self.info.id)


class AsyncReleaseHandle:
    """The async twin of :class:`ReleaseHandle`: the fetching methods are coroutines."""

    def __init__(self, info: Release, releases: _AsyncReleases) -> None:
        self.info = info
        self._releases = releases

    @property
    def id(self) -> str:
        """The release id (its sha256)."""
        return self.info.id

    @property
    def dataset(self) -> str:
        """The dataset the release was synthesized from."""
        return self.info.dataset

    @property
    def rows(self) -> int:
        """Number of synthetic rows."""
        return self.info.rows

    @property
    def columns(self) -> tuple[str, ...]:
        """Column names."""
        return self.info.columns

    @property
    def epsilon(self) -> float:
        """The epsilon charged for it (the gateway's accountant)."""
        return self.info.epsilon

    @property
    def delta(self) -> float:
        """The delta charged for it."""
        return self.info.delta

    @property
    def spend_seq(self) -> int:
        """The ledger seq of its spend entry."""
        return self.info.spend_seq

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.info, name)

    def __repr__(self) -> str:
        i = self.info
        return (
            f"AsyncReleaseHandle(id={i.id[:12]}..., dataset={i.dataset!r}, rows={i.rows}, eps={i.epsilon:g})"
        )

    async def content(self, *, format: ReleaseFormat = "csv") -> bytes:
        """The release's data as bytes in ``format``."""
        return await self._releases.content(self.info.id, format=format)

    async def to_csv(self, path: str | Path) -> Path:
        """Write the release as CSV to ``path`` (atomically); returns the path."""
        return await self._releases.download(self.info.id, path, format="csv")

    async def download(self, path: str | Path, *, format: ReleaseFormat = "csv") -> Path:
        """Write the release in ``format`` to ``path`` (atomically); returns the path."""
        return await self._releases.download(self.info.id, path, format=format)

    async def to_pandas(self, *, format: ReleaseFormat | None = None) -> DataFrame:
        """The release as a pandas DataFrame (Parquet when pyarrow is installed, else CSV)."""
        fmt = format or _default_frame_format()
        return frame_from_bytes(await self._releases.content(self.info.id, format=fmt), fmt)

    async def audit(self) -> AuditSummary:
        """The release's audit (aggregates only)."""
        return await self._releases.audit(self.info.id)

    async def quality(self) -> QualitySummary:
        """The release's quality report."""
        return await self._releases.quality(self.info.id)
