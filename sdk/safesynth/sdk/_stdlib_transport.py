"""An httpx transport over the standard library's ``http.client`` for a plain-http gateway.

Why: on loopback the client's CPU per DP statistic is mostly HTTP/1.1 bookkeeping, and httpx's default
transport (httpcore over the pure-Python h11 state machine) spends about twice what ``http.client``
does per request. The SDK talks to one gateway, usually on ``http://127.0.0.1``; for that origin the
sync :class:`~safesynth.sdk.Client` sends through this transport, and httpx stays the API (requests,
responses, exceptions, timeouts are httpx's). Anything else (https, another origin, a chunked upload)
goes to the ``fallback`` transport (the one httpx built), so TLS is always httpx's.

Behaviour kept from httpx's pool: keep-alive with at most ``max_keepalive`` idle connections, idle
ones dropped after ``keepalive_expiry`` seconds or when the server closed them (checked before reuse),
at most ``max_connections`` at once (``pool`` timeout), and httpx's ``connect``/``read``/``write``
timeouts from the request's ``timeout`` extension. Errors are httpx's: ``ConnectError`` /
``ConnectTimeout`` when nothing was sent, ``WriteError``/``WriteTimeout``, ``ReadError`` /
``ReadTimeout``, ``RemoteProtocolError`` for a dropped or malformed answer, ``PoolTimeout``.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx

__all__ = ["StdlibTransport"]

_CHUNK = 65536
_DEFAULT_TIMEOUTS: dict[str, float | None] = {"connect": 5.0, "read": 30.0, "write": 30.0, "pool": 30.0}


def _closed_by_peer(sock: socket.socket) -> bool:
    """An idle keep-alive socket that is readable was closed (or spoken to) by the server: don't reuse.

    One non-blocking peek (no descriptor limit, unlike select); the caller sets the timeout again."""
    try:
        sock.settimeout(0.0)
        sock.recv(1, socket.MSG_PEEK)  # b"": the server closed it; data: unexpected bytes
    except BlockingIOError:
        return False  # nothing to read: alive and idle
    except OSError:
        return True
    return True


class _Connection:
    """One kept-alive ``http.client`` connection and when it went idle."""

    __slots__ = ("conn", "idle_since")

    def __init__(self, conn: http.client.HTTPConnection) -> None:
        self.conn = conn
        self.idle_since = 0.0


class _Body(httpx.SyncByteStream):
    """A response body read from ``http.client``; closing it returns the connection to the pool."""

    __slots__ = ("_conn", "_done", "_request", "_response", "_transport")

    def __init__(
        self,
        transport: StdlibTransport,
        conn: _Connection,
        response: http.client.HTTPResponse,
        request: httpx.Request,
    ) -> None:
        self._transport = transport
        self._conn = conn
        self._response = response
        self._request = request
        self._done = False

    def __iter__(self) -> Iterator[bytes]:
        response = self._response
        try:
            while True:
                chunk = response.read1(_CHUNK)
                if not chunk:
                    break
                yield chunk
            if response.length:  # the connection ended before the declared Content-Length
                raise http.client.IncompleteRead(b"", response.length)
            response.close()  # complete: releases the reader, the socket stays with the connection
        except TimeoutError as exc:
            self._fail()
            raise httpx.ReadTimeout(str(exc) or "timed out", request=self._request) from exc
        except http.client.HTTPException as exc:
            self._fail()
            raise httpx.RemoteProtocolError(repr(exc), request=self._request) from exc
        except OSError as exc:
            self._fail()
            raise httpx.ReadError(repr(exc), request=self._request) from exc

    def _fail(self) -> None:
        if not self._done:
            self._done = True
            self._transport._discard(self._conn)

    def close(self) -> None:
        if self._done:
            return
        self._done = True
        response = self._response
        if response.isclosed() and not response.will_close:  # read to the end: reusable
            self._transport._release(self._conn)
        else:
            response.close()
            self._transport._discard(self._conn)


class StdlibTransport(httpx.BaseTransport):
    """Sends ``http://host:port`` requests with ``http.client``; everything else to ``fallback``."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        fallback: httpx.BaseTransport,
        max_connections: int = 100,
        max_keepalive: int = 20,
        keepalive_expiry: float = 5.0,
    ) -> None:
        self._host = host
        self._port = port
        self._fallback = fallback
        self._max_keepalive = max_keepalive
        self._expiry = keepalive_expiry
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_connections)
        self._closed = False

    # ------------------------------------------------------------------------------------ the pool
    def _checkout(self, request: httpx.Request, timeouts: dict[str, Any]) -> _Connection:
        """An idle live connection, or a new connected one."""
        if not self._slots.acquire(timeout=timeouts.get("pool")):
            raise httpx.PoolTimeout("no free connection in the pool", request=request)
        try:
            now = time.monotonic()
            while True:
                with self._lock:
                    idle = self._idle.pop() if self._idle else None
                if idle is None:
                    break
                sock = idle.conn.sock
                if now - idle.idle_since > self._expiry or sock is None or _closed_by_peer(sock):
                    idle.conn.close()
                    continue
                return idle
            conn = http.client.HTTPConnection(self._host, self._port, timeout=timeouts.get("connect"))
            try:
                conn.connect()
            except TimeoutError as exc:
                raise httpx.ConnectTimeout(str(exc) or "timed out", request=request) from exc
            except OSError as exc:
                raise httpx.ConnectError(str(exc), request=request) from exc
            return _Connection(conn)
        except BaseException:
            self._slots.release()
            raise

    def _release(self, connection: _Connection) -> None:
        connection.idle_since = time.monotonic()
        with self._lock:
            keep = not self._closed and len(self._idle) < self._max_keepalive
            if keep:
                self._idle.append(connection)
        if not keep:
            connection.conn.close()
        self._slots.release()

    def _discard(self, connection: _Connection) -> None:
        connection.conn.close()
        self._slots.release()

    # ------------------------------------------------------------------------------------ httpx API
    def handles(self, request: httpx.Request) -> bool:
        """True when this transport sends ``request`` itself (plain http to its origin, no chunking)."""
        url = request.url
        return (
            url.scheme == "http"
            and url.host == self._host
            and (url.port or 80) == self._port
            and "Host" in request.headers
            and "Transfer-Encoding" not in request.headers
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if not self.handles(request):
            return self._fallback.handle_request(request)
        if self._closed:
            raise RuntimeError("the transport is closed")
        timeouts = {**_DEFAULT_TIMEOUTS, **request.extensions.get("timeout", {})}
        body = request.read()
        connection = self._checkout(request, timeouts)
        conn = connection.conn
        sock = conn.sock
        try:
            try:
                sock.settimeout(timeouts.get("write"))
                target = request.url.raw_path.decode("ascii")
                conn.putrequest(request.method, target, skip_host=True, skip_accept_encoding=True)
                for name, value in request.headers.raw:
                    conn.putheader(name, value)
                conn.endheaders(body if body else None)
            except TimeoutError as exc:
                raise httpx.WriteTimeout(str(exc) or "timed out", request=request) from exc
            except ValueError as exc:  # an illegal header name or value: nothing was sent
                raise httpx.LocalProtocolError(str(exc), request=request) from exc
            except (OSError, http.client.HTTPException) as exc:
                raise httpx.WriteError(repr(exc), request=request) from exc
            try:
                sock.settimeout(timeouts.get("read"))
                response = conn.getresponse()
            except TimeoutError as exc:
                raise httpx.ReadTimeout(str(exc) or "timed out", request=request) from exc
            except http.client.HTTPException as exc:  # RemoteDisconnected, BadStatusLine, too long ...
                raise httpx.RemoteProtocolError(repr(exc), request=request) from exc
            except OSError as exc:
                raise httpx.ReadError(repr(exc), request=request) from exc
        except BaseException:
            self._discard(connection)
            raise
        version = b"HTTP/1.1" if response.version == 11 else b"HTTP/1.0"
        return httpx.Response(
            response.status,
            # http.client decodes header bytes as latin-1: encoding back gives the bytes as sent
            headers=[(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.getheaders()],
            stream=_Body(self, connection, response, request),
            extensions={"http_version": version, "reason_phrase": response.reason.encode("latin-1")},
        )

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.conn.close()
