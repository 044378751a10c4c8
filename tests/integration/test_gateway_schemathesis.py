"""Property-based robustness: schemathesis against the gateway's own OpenAPI document.

Every operation of the document is called in-process (schemathesis' ASGI loader, the real app over a
real home: SQLite files, the real ledger) with generated valid and invalid inputs, as the admin
(every role's endpoints are reachable). Each answer must not be a 5xx and must conform to the
documented response schema (status code documented, JSON body valid against its schema). Bounded:
a few examples per operation, so the whole module takes well under a minute.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

sys.path.insert(0, str(Path(__file__).parents[1] / "unit" / "gateway" / "api"))

from gw_fixtures import Home, make_home, require_dp, verify_store

from safesynth.gateway.api.app import create_app

require_dp()

pytestmark = [pytest.mark.slow]

#: Operations that start background work (synthesis jobs) are called too; the queue is small and
#: jobs are cheap on the fixture's 300-row table.
MAX_EXAMPLES = 8


@pytest.fixture(scope="module")
def gateway_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    home = make_home(tmp_path_factory.mktemp("schemathesis"), job_queue_size=4, jobs_per_principal=4)
    yield home
    home.gateway.close()
    verify_store(home.settings.ledger_path)  # whatever was generated, the ledger stays valid


def _operations(home: Home) -> list[Any]:
    app = create_app(home.settings, gateway=home.gateway)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 30  # the whole document, not an empty or partial load
    return operations


CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]


@pytest.mark.parametrize(
    ("mode", "dataset"),
    [(GenerationMode.POSITIVE, None), (GenerationMode.POSITIVE, "d1"), (GenerationMode.NEGATIVE, None)],
    ids=["valid", "valid-on-registered-dataset", "invalid"],
)
def test_no_server_error_and_schema_conformance(
    gateway_home: Home, mode: GenerationMode, dataset: str | None
) -> None:
    """``dataset``: the ``{dataset}`` path parameter fixed to a registered dataset, so that generated
    bodies reach planning, admission and the ledger instead of stopping at ``not_found``."""
    headers = {"Authorization": f"Bearer {gateway_home.tokens['admin']}"}
    failures: list[str] = []
    for operation in _operations(gateway_home):
        fixed = {"dataset": dataset} if dataset is not None and "{dataset}" in operation.path else None
        if dataset is not None and fixed is None:
            continue

        @given(case=operation.as_strategy(mode, path_parameters=fixed))
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            run()
        except Unsatisfiable:  # nothing to make invalid (an operation without parameters)
            continue
        except (Exception, BaseExceptionGroup) as exc:  # every operation's failure, reported together
            failures.append(f"{operation.label}: {type(exc).__name__}: {str(exc)[:1500]}")
    assert not failures, "\n\n".join(failures)
