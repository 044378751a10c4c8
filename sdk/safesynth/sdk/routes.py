"""The gateway's HTTP paths, in one place (the gateway's router and the SDK both use these).

Templates use ``str.format`` fields; :func:`path` fills them and percent-encodes each value, so an id
can never add a path segment.
"""

from __future__ import annotations

import functools
from urllib.parse import quote

__all__ = [
    "DATASET",
    "DATASETS",
    "DATASET_BUDGET",
    "DATASET_QUERIES",
    "DATASET_QUERY_PLAN",
    "DATASET_SYNTHESES",
    "DATASET_SYNTHESIS_PLAN",
    "HEALTH",
    "IDEMPOTENCY_HEADER",
    "INFO",
    "JOB",
    "JOBS",
    "JOB_CANCEL",
    "JOB_EVENTS",
    "LEDGER_CHECKPOINT",
    "LEDGER_CONSISTENCY",
    "LEDGER_ENTRIES",
    "LEDGER_ENTRY",
    "LEDGER_EXPORT",
    "LEDGER_PROOF",
    "LEDGER_PUBLIC_KEY",
    "PREFIX",
    "PROBLEM_CONTENT_TYPE",
    "RELEASE",
    "RELEASES",
    "RELEASE_AUDIT",
    "RELEASE_DATA",
    "RELEASE_QUALITY",
    "TOKEN",
    "TOKENS",
    "TOKEN_REVOKE",
    "path",
]

PREFIX = "/v1"

#: Liveness (no authentication) and the service description (public key, version).
HEALTH = "/healthz"
INFO = PREFIX + "/info"

#: GET list / POST register (JSON with a server-side ``path``, or multipart ``metadata`` + ``file``).
DATASETS = PREFIX + "/datasets"
DATASET = DATASETS + "/{dataset}"
DATASET_BUDGET = DATASET + "/budget"
#: POST a SynthesisRequest -> 202 Job; ``.../plan`` -> PlanResponse, spends nothing.
DATASET_SYNTHESES = DATASET + "/syntheses"
DATASET_SYNTHESIS_PLAN = DATASET_SYNTHESES + "/plan"
#: POST a QueryRequest -> QueryResult; ``.../plan`` -> PlanResponse, spends nothing.
DATASET_QUERIES = DATASET + "/queries"
DATASET_QUERY_PLAN = DATASET_QUERIES + "/plan"

JOBS = PREFIX + "/jobs"
JOB = JOBS + "/{job}"
#: POST -> Job (state cancelled, or already final).
JOB_CANCEL = JOB + "/cancel"
#: GET text/event-stream: events ``job`` with a Job as data, until the job is final.
JOB_EVENTS = JOB + "/events"

RELEASES = PREFIX + "/releases"
RELEASE = RELEASES + "/{release}"
#: GET ``?format=csv|parquet|json`` -> the synthetic table.
RELEASE_DATA = RELEASE + "/data"
RELEASE_AUDIT = RELEASE + "/audit"
RELEASE_QUALITY = RELEASE + "/quality"

#: GET ``?start=<seq>&limit=<n>&kind=<kind>`` -> LedgerEntries.
LEDGER_ENTRIES = PREFIX + "/ledger/entries"
LEDGER_ENTRY = LEDGER_ENTRIES + "/{seq}"
LEDGER_CHECKPOINT = PREFIX + "/ledger/checkpoint"
#: GET ``?tree_size=<n>`` -> InclusionProof of entry ``seq``.
LEDGER_PROOF = PREFIX + "/ledger/proofs/{seq}"
#: GET ``?old=<m>&new=<n>`` -> ConsistencyProof.
LEDGER_CONSISTENCY = PREFIX + "/ledger/consistency"
#: GET -> the export bundle (a zip archive of the directory ``LedgerStore.export`` writes).
LEDGER_EXPORT = PREFIX + "/ledger/export"
#: GET -> the ledger's public key file (text).
LEDGER_PUBLIC_KEY = PREFIX + "/ledger/public-key"

#: GET list / POST create (admin).
TOKENS = PREFIX + "/tokens"
TOKEN = TOKENS + "/{token}"
#: POST -> TokenInfo (revoked).
TOKEN_REVOKE = TOKEN + "/revoke"

#: Sent on every POST that creates something; a retry with the same key returns the same result and
#: never spends twice.
IDEMPOTENCY_HEADER = "Idempotency-Key"
PROBLEM_CONTENT_TYPE = "application/problem+json"


@functools.lru_cache(maxsize=1024)
def path(template: str, **values: str | int) -> str:
    """Fill ``template`` with percent-encoded ``values`` (no ``/`` survives encoding); remembers the last
    1024 paths (a client asks for the same few again and again)."""
    return template.format(**{key: quote(str(value), safe="") for key, value in values.items()})
