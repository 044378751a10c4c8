"""Cheap requests to the one gateway a client talks to: build and send without per-call merging.

``httpx.Client.build_request`` + ``send`` re-parse and merge the base URL, merge the client's headers,
resolve auth, cookies, redirects and the proxy mount on every call: about half of the client's CPU
per DP statistic. A SafeSynth client talks to a single origin with fixed headers, none of those
features (bearer header, no cookies, no redirects followed), so this module does that work once:

* :class:`RequestFactory` builds ``httpx.Request`` objects from a cached ``httpx.URL`` per path and a
  copy of the headers the client would have sent (the same ``Host``, ``Accept``, ``Accept-Encoding``,
  ``Connection``, ``User-Agent``, ``Authorization``), with the client's timeout;
* :func:`send` and :func:`asend` hand a request to the transport ``httpx`` itself would have chosen for
  the gateway's URL (the connection pool, a proxy from the environment, or a test transport), and read
  the body unless streaming, closing the response on any failure, as ``httpx.Client.send`` does
  (logging the same ``httpx`` INFO line);
* :func:`sync_transport` puts :class:`~safesynth.sdk._stdlib_transport.StdlibTransport` in front of
  httpx's pool for a plain-http gateway reached without a proxy (the sync client; the async client
  keeps httpx's pool).

Both clients use the same factory; the wire bytes are the same as through ``httpx.Client`` (a test
compares them).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, overload

import httpx

from safesynth.sdk import _calls as calls
from safesynth.sdk import routes
from safesynth.sdk._http import encode_body, new_idempotency_key
from safesynth.sdk._stdlib_transport import StdlibTransport

__all__ = [
    "URL_CACHE_SIZE",
    "RequestFactory",
    "asend",
    "build_call",
    "gateway_transport",
    "send",
    "sync_transport",
]

#: Distinct paths whose parsed URL is kept (a client reuses a few: per dataset, job, release).
URL_CACHE_SIZE = 256
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_CLOSED = "Cannot send a request, as the client has been closed."
_HTTPX_LOG = logging.getLogger("httpx")


class RequestFactory:
    """Builds requests to ``http``'s base URL with ``http``'s headers and timeout, minus the merging."""

    __slots__ = ("_headers", "_http", "_timeout", "_urls")

    def __init__(self, http: httpx.Client | httpx.AsyncClient) -> None:
        self._http = http
        probe = http.build_request("GET", "/")
        # The client's own headers, in the order httpx sends them (Host first).
        self._headers = httpx.Headers(probe.headers)
        self._timeout: dict[str, Any] = dict(probe.extensions["timeout"])
        self._urls: dict[str, httpx.URL] = {}

    def url(self, path: str, params: Mapping[str, str | int | float] | None = None) -> httpx.URL:
        """``path`` (absolute, already percent-encoded) under the base URL, with ``params`` if any."""
        url = self._urls.get(path)
        if url is None:
            url = self._http.build_request("GET", path).url
            if len(self._urls) >= URL_CACHE_SIZE:
                self._urls.clear()
            self._urls[path] = url
        return httpx.URL(url, params=params) if params else url

    def build(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int | float] | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        content_type: str | None = None,
    ) -> httpx.Request:
        """What ``http.build_request(method, path, params=, headers=, content=)`` returns, built cheaply.

        ``headers`` override the client's (as in httpx); ``content_type`` sets ``Content-Type``.
        """
        merged = self._headers.copy()
        if headers:
            for name, value in headers.items():
                merged[name] = value
        if content_type is not None:
            merged["Content-Type"] = content_type
        if content or method in _BODY_METHODS:
            merged["Content-Length"] = str(len(content or b""))
        request = httpx.Request(
            method,
            self.url(path, params),
            headers=merged,
            stream=httpx.ByteStream(content or b""),
            extensions={"timeout": self._timeout},
        )
        request.read()  # the body is bytes already: makes request.content available, as httpx does
        return request


def build_call(
    http: httpx.Client | httpx.AsyncClient, requests: RequestFactory, call: calls.Call[Any], key: str | None
) -> httpx.Request:
    """The request for ``call`` (both clients): an Idempotency-Key on creating calls (``key`` or a fresh
    one), multipart uploads through httpx, everything else through the cheap ``requests`` factory."""
    headers: dict[str, str] = {}
    if call.creates:
        headers[routes.IDEMPOTENCY_HEADER] = key or new_idempotency_key()
    if call.upload is not None and call.body is not None:
        files = {"file": (call.upload.filename, call.upload.content, call.upload.content_type)}
        data = {"metadata": calls.metadata_json(call.body)}
        return http.build_request(
            call.method, call.path, params=call.params, headers=headers, files=files, data=data
        )
    if call.body is None:
        return requests.build(call.method, call.path, params=call.params, headers=headers)
    return requests.build(
        call.method,
        call.path,
        params=call.params,
        headers=headers,
        content=encode_body(call.body),
        content_type="application/json",
    )


@overload
def gateway_transport(http: httpx.Client, base_url: str) -> httpx.BaseTransport | None: ...
@overload
def gateway_transport(http: httpx.AsyncClient, base_url: str) -> httpx.AsyncBaseTransport | None: ...
def gateway_transport(
    http: httpx.Client | httpx.AsyncClient, base_url: str
) -> httpx.BaseTransport | httpx.AsyncBaseTransport | None:
    """The transport ``http`` routes ``base_url`` through (its pool, an environment proxy's, or the one
    passed in), or None when httpx does not tell (then the clients send through ``http.send``)."""
    choose = getattr(http, "_transport_for_url", None)
    if choose is None:  # pragma: no cover - a future httpx without the method
        return None
    transport = choose(httpx.URL(base_url))
    wanted = httpx.BaseTransport if isinstance(http, httpx.Client) else httpx.AsyncBaseTransport
    return transport if isinstance(transport, wanted) else None


def sync_transport(http: httpx.Client, base_url: str, *, given: bool) -> httpx.BaseTransport | None:
    """What the sync client sends on: for a plain-http gateway reached without a proxy on httpx's own
    pool (no ``transport`` given), a :class:`StdlibTransport` in front of that pool; else the transport
    httpx would use (:func:`gateway_transport`)."""
    transport = gateway_transport(http, base_url)
    url = httpx.URL(base_url)
    if (
        not given
        and transport is getattr(http, "_transport", None)  # not a proxy mount
        and isinstance(transport, httpx.HTTPTransport)
        and url.scheme == "http"
    ):
        return StdlibTransport(url.host, url.port or 80, fallback=transport)
    return transport


def _logged(request: httpx.Request, response: httpx.Response) -> None:
    """The line httpx's own client logs for each request (logger ``httpx``, INFO), kept for parity."""
    if _HTTPX_LOG.isEnabledFor(logging.INFO):
        _HTTPX_LOG.info(
            'HTTP Request: %s %s "%s %d %s"',
            request.method,
            request.url,
            response.http_version,
            response.status_code,
            response.reason_phrase,
        )


def _prepare(http: httpx.Client | httpx.AsyncClient, request: httpx.Request) -> None:
    if http.is_closed:
        raise RuntimeError(_CLOSED)
    if "timeout" not in request.extensions:
        request.extensions["timeout"] = http.timeout.as_dict()


def send(
    http: httpx.Client, transport: httpx.BaseTransport, request: httpx.Request, *, stream: bool = False
) -> httpx.Response:
    """``http.send(request, stream=stream)`` for a client with no auth, cookies or redirects to follow."""
    _prepare(http, request)
    try:
        response = transport.handle_request(request)
    except httpx.RequestError as exc:
        exc.request = request
        raise
    response.request = request
    _logged(request, response)
    if not stream:
        try:
            response.read()
        except BaseException as exc:
            response.close()
            if isinstance(exc, httpx.RequestError):
                exc.request = request
            raise
    return response


async def asend(
    http: httpx.AsyncClient,
    transport: httpx.AsyncBaseTransport,
    request: httpx.Request,
    *,
    stream: bool = False,
) -> httpx.Response:
    """The async twin of :func:`send`."""
    _prepare(http, request)
    try:
        response = await transport.handle_async_request(request)
    except httpx.RequestError as exc:
        exc.request = request
        raise
    response.request = request
    _logged(request, response)
    if not stream:
        try:
            await response.aread()
        except BaseException as exc:
            await response.aclose()
            if isinstance(exc, httpx.RequestError):
                exc.request = request
            raise
    return response
