"""Upload paths (dataset registration, external-table audits) get the upload size limit; others do not."""

from __future__ import annotations

from safesynth.gateway.api.limits import BodyLimitMiddleware
from safesynth.sdk import models as wire
from safesynth.sdk import routes


async def _noop(scope: object, receive: object, send: object) -> None:
    return None


def test_upload_paths_match_literals_and_placeholders() -> None:
    mw = BodyLimitMiddleware(
        _noop,
        max_bytes=10,
        max_upload_bytes=1000,
        upload_paths=(routes.DATASETS, wire.DATASET_EXTERNAL_AUDITS),
    )
    assert mw._is_upload(routes.DATASETS)
    assert mw._is_upload("/v1/datasets/patients/audits")
    assert not mw._is_upload("/v1/datasets//audits")
    assert not mw._is_upload("/v1/datasets/patients/queries")
    assert not mw._is_upload("/v1/datasets/patients/audits/extra")
