"""The FastAPI application factory and the uvicorn runner.

``create_app(settings)`` builds the app; its lifespan opens the gateway (state, ledger, jobs; jobs a
previous process left running are marked failed) and, on shutdown, finishes or fails running jobs.
The language model is loaded once, on first use by an engine that needs it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import Any

import anyio.to_thread
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from safesynth.gateway.api.audit_routes import audit_router
from safesynth.gateway.api.fast_queries import GatewayApp, QueryFastPath
from safesynth.gateway.api.limits import BodyLimitMiddleware, RateLimiter
from safesynth.gateway.api.problems import install_problem_handlers
from safesynth.gateway.api.routes import router
from safesynth.gateway.service.gateway import Gateway
from safesynth.gateway.settings import GatewaySettings, check_settings
from safesynth.sdk import models as wire
from safesynth.sdk import routes
from safesynth.sdk.routes import PROBLEM_CONTENT_TYPE

__all__ = ["WARM_IMPORTS", "create_app", "serve", "warm_imports"]


def create_app(
    settings: GatewaySettings, *, gateway: Gateway | None = None, fast_queries: bool = True
) -> FastAPI:
    """The gateway's ASGI app. ``gateway``: an already open service (tests); else opened at startup.

    ``fast_queries=False`` serves DP statistics through the FastAPI route instead of the
    :class:`~safesynth.gateway.api.fast_queries.QueryFastPath` (tests check both answer alike).
    """
    check_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Concurrent requests reach the ledger together, so its group commit can share one
        # transaction and one fsync among them: give blocking handlers enough threads.
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.request_threads
        service = gateway if gateway is not None else await run_in_threadpool(Gateway, settings)
        app.state.gateway = service
        try:
            yield
        finally:
            app.state.gateway = None
            fast_path = getattr(app, "fast_path", None)
            if isinstance(fast_path, QueryFastPath):
                fast_path.close()
            if gateway is None:
                await run_in_threadpool(service.close)

    app = GatewayApp(
        title="SafeSynth gateway",
        version=version("safesynth"),
        description="Differentially private synthetic data and statistics behind a privacy gateway, "
        "with a signed privacy ledger. Errors are RFC 9457 problem details with a stable `code`.",
        lifespan=lifespan,
    )
    app.state.gateway = gateway
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
    install_problem_handlers(app)
    app.include_router(router)
    app.include_router(audit_router)
    _document_registration_body(app)
    if fast_queries:  # in front of the middleware stack, with its own body limit
        app.fast_path = QueryFastPath(max_bytes=settings.max_request_bytes, threads=settings.request_threads)
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_request_bytes,
        max_upload_bytes=settings.max_upload_bytes,
        upload_paths=(routes.DATASETS, wire.DATASET_EXTERNAL_AUDITS),
    )
    return app


def _document_registration_body(app: FastAPI) -> None:
    """Add ``DatasetCreate`` (the registration body, parsed by hand for JSON or multipart) to the
    OpenAPI components so that the registration endpoint's ``$ref`` resolves."""
    from fastapi.openapi.utils import get_openapi

    from safesynth.sdk.models import DatasetCreate

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            schema = DatasetCreate.model_json_schema(ref_template="#/components/schemas/{model}")
            components = doc.setdefault("components", {}).setdefault("schemas", {})
            for name, definition in schema.pop("$defs", {}).items():
                components.setdefault(name, definition)
            components["DatasetCreate"] = schema
            _problems_as_problem_json(doc)
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _problems_as_problem_json(doc: dict[str, Any]) -> None:
    """Document error answers as they are sent: ``application/problem+json`` with the Problem schema.

    FastAPI files a response model under the route's own media type (``application/json``, or
    ``text/plain`` for a plain-text route); error answers are problem+json whatever the route. Every
    operation with a request body also documents 400 (a body the framework cannot parse at all).
    """
    problem = {"schema": {"$ref": "#/components/schemas/Problem"}}
    for item in doc.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            if "requestBody" in operation and "400" not in responses:
                responses["400"] = {"description": "An RFC 9457 problem (application/problem+json)"}
            for status, response in responses.items():
                if str(status).isdigit() and int(status) >= 400 and isinstance(response, dict):
                    response["content"] = {PROBLEM_CONTENT_TYPE: problem}


#: Modules the first synthesis or audit would otherwise import while a client waits (about 1-2 s).
WARM_IMPORTS = (
    "dp_accounting.pld.privacy_loss_distribution",
    "pyarrow.parquet",
    "sklearn.neighbors",
    "safesynth.gateway.engines.tabular.engine",
    "safesynth.gateway.engines.text.engine",
)


def warm_imports() -> None:
    """Import :data:`WARM_IMPORTS` now (at ``safesynth serve`` start-up, not in the first request)."""
    import importlib

    for name in WARM_IMPORTS:
        importlib.import_module(name)


def serve(settings: GatewaySettings, *, log_level: str = "info") -> None:
    """Run the gateway with uvicorn until interrupted (TLS when configured)."""
    import uvicorn

    check_settings(settings)
    warm_imports()
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        ssl_certfile=str(settings.tls_certfile) if settings.tls_certfile else None,
        ssl_keyfile=str(settings.tls_keyfile) if settings.tls_keyfile else None,
        server_header=False,
        # "auto" picks httptools and uvloop (the [gateway] extra installs both) over h11/asyncio.
        http="auto",
        loop="auto",
        proxy_headers=False,
        timeout_graceful_shutdown=10,
    )
    uvicorn.Server(config).run()
