"""An httpx transport for a plain-http gateway: pooled sockets, one send per request, a lean parser.

Why: on loopback the client's CPU per DP statistic is mostly HTTP/1.1 bookkeeping, and httpx's default
transport (httpcore over the pure-Python h11 state machine) spends two to three times what this does
per request. The SDK talks to one gateway, usually on ``http://127.0.0.1``; for that origin the sync
:class:`~safesynth.sdk.Client` sends through this transport, and httpx stays the API (requests,
responses, exceptions, timeouts are httpx's). Anything else (https, another origin, a streamed or
multipart upload) goes to the ``fallback`` transport (the one httpx built), so TLS is always httpx's.

The request head is written with the body in one ``sendall`` (method, target, names and values checked
for characters that could split the message: :class:`httpx.LocalProtocolError`, nothing sent); the
answer is read by :mod:`safesynth.sdk._http11` (status, headers, Content-Length or chunked framing,
``Connection``). A body shorter than its Content-Length is an error, not a short body.

Behaviour kept from httpx's pool: keep-alive with at most ``max_keepalive`` idle connections, idle
ones dropped after ``keepalive_expiry`` seconds or when the server closed them (checked before reuse),
at most ``max_connections`` at once (``pool`` timeout), and httpx's ``connect``/``read``/``write``
timeouts from the request's ``timeout`` extension. Errors are httpx's: ``ConnectError`` /
``ConnectTimeout`` when nothing was sent, ``WriteError``/``WriteTimeout``, ``ReadError`` /
``ReadTimeout``, ``RemoteProtocolError`` for a dropped or malformed answer, ``PoolTimeout``.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections.abc import Iterator
from io import BufferedReader
from typing import Any

import httpx

from safesynth.sdk._http11 import BodyReader, ProtocolError, ResponseHead, read_head

__all__ = ["KEEPALIVE_EXPIRY", "StdlibTransport"]

#: Seconds an idle connection is kept: under uvicorn's 5 s keep-alive timeout, so the client does not
#: reuse a connection the server is closing at that moment (httpx's pool uses 5 s).
KEEPALIVE_EXPIRY = 4.0

_VERSIONS = {0: b"HTTP/1.0", 1: b"HTTP/1.1"}
_LINE_CACHE_SIZE = 256
_DEFAULT_TIMEOUTS: dict[str, float | None] = {"connect": 5.0, "read": 30.0, "write": 30.0, "pool": 30.0}
#: RFC 9110 tokens (method, header name); header values and the target must not split the message.
_NOT_TOKEN = re.compile(rb"[^!#$%&'*+\-.^_`|~0-9A-Za-z]|^$").search
_BAD_VALUE = re.compile(rb"[\x00\r\n]").search
_BAD_TARGET = re.compile(rb"[\x00-\x20\x7f]|^$").search


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


def _head(request: httpx.Request, lines_seen: dict[tuple[bytes, bytes], bytes]) -> bytes:
    """The request line and headers, checked; raises LocalProtocolError before anything is sent.

    ``lines_seen`` caches checked header lines (a client repeats most of its headers on every request).
    """
    method = request.method.encode("ascii", "replace")
    target = request.url.raw_path
    if _NOT_TOKEN(method) or _BAD_TARGET(target):
        raise httpx.LocalProtocolError(f"illegal method or target: {method!r} {target!r}", request=request)
    lines = [b"%s %s HTTP/1.1\r\n" % (method, target)]
    for field in request.headers.raw:
        line = lines_seen.get(field)
        if line is None:
            name, value = field
            if _NOT_TOKEN(name) or _BAD_VALUE(value):
                raise httpx.LocalProtocolError(f"illegal header {name!r}", request=request)
            line = b"%s: %s\r\n" % field
            if len(lines_seen) >= _LINE_CACHE_SIZE:
                lines_seen.clear()
            lines_seen[field] = line
        lines.append(line)
    lines.append(b"\r\n")
    return b"".join(lines)


def _host_first(raw: list[tuple[bytes, bytes]]) -> bool:
    return bool(raw) and raw[0][0].lower() == b"host"


class _Connection:
    """One kept-alive socket and when it went idle."""

    __slots__ = ("idle_since", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.idle_since = 0.0

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class _Body(httpx.SyncByteStream):
    """A response body as it arrives; closing it returns the connection to the pool when reusable."""

    __slots__ = ("_conn", "_done", "_fp", "_head", "_reader", "_request", "_transport")

    def __init__(
        self,
        transport: StdlibTransport,
        conn: _Connection,
        fp: BufferedReader,
        head: ResponseHead,
        request: httpx.Request,
    ) -> None:
        self._transport = transport
        self._conn = conn
        self._fp = fp
        self._head = head
        self._reader = BodyReader(fp, head)
        self._request = request
        self._done = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._reader
        except TimeoutError as exc:
            self._fail()
            raise httpx.ReadTimeout(str(exc) or "timed out", request=self._request) from exc
        except ProtocolError as exc:
            self._fail()
            raise httpx.RemoteProtocolError(str(exc), request=self._request) from exc
        except OSError as exc:
            self._fail()
            raise httpx.ReadError(repr(exc), request=self._request) from exc

    def _fail(self) -> None:
        if not self._done:
            self._done = True
            self._fp.close()
            self._transport._discard(self._conn)

    def close(self) -> None:
        if self._done:
            return
        self._done = True
        self._fp.close()  # the reader only: the socket stays with the connection
        if self._reader.complete and self._head.keep_alive:
            self._transport._release(self._conn)
        else:
            self._transport._discard(self._conn)


class StdlibTransport(httpx.BaseTransport):
    """Sends ``http://host:port`` requests itself; everything else to ``fallback``."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        fallback: httpx.BaseTransport,
        max_connections: int = 100,
        max_keepalive: int = 20,
        keepalive_expiry: float = KEEPALIVE_EXPIRY,
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
        self._lines: dict[tuple[bytes, bytes], bytes] = {}

    # ------------------------------------------------------------------------------------ the pool
    def _connect(self, request: httpx.Request, timeout: float | None) -> _Connection:
        try:
            sock = socket.create_connection((self._host, self._port), timeout)
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc) or "timed out", request=request) from exc
        except OSError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        with contextlib.suppress(OSError):  # small messages: no Nagle delay (as httpcore does)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _Connection(sock)

    def _checkout(self, request: httpx.Request, timeouts: dict[str, Any]) -> _Connection:
        """An idle live connection, or a new connected one (holding one of the pool's slots)."""
        if not self._slots.acquire(timeout=timeouts.get("pool")):
            raise httpx.PoolTimeout("no free connection in the pool", request=request)
        try:
            now = time.monotonic()
            while True:
                with self._lock:
                    idle = self._idle.pop() if self._idle else None
                if idle is None:
                    return self._connect(request, timeouts.get("connect"))
                if now - idle.idle_since > self._expiry or _closed_by_peer(idle.sock):
                    idle.close()
                    continue
                return idle
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
            connection.close()
        self._slots.release()

    def _discard(self, connection: _Connection) -> None:
        connection.close()
        self._slots.release()

    # ------------------------------------------------------------------------------------ httpx API
    def handles(self, request: httpx.Request) -> bool:
        """True when this transport sends ``request`` itself: plain http to its origin, a body given as
        bytes (so never chunked), and a ``Host`` header first (as every httpx-built request has)."""
        url = request.url
        return (
            url.scheme == "http"
            and url.host == self._host
            and (url.port or 80) == self._port
            and isinstance(request.stream, httpx.ByteStream)
            and _host_first(request.headers.raw)
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if not self.handles(request):
            return self._fallback.handle_request(request)
        if self._closed:
            raise RuntimeError("the transport is closed")
        timeouts = {**_DEFAULT_TIMEOUTS, **request.extensions.get("timeout", {})}
        message = _head(request, self._lines) + request.read()
        connection = self._checkout(request, timeouts)
        sock = connection.sock
        try:
            try:
                sock.settimeout(timeouts.get("write"))
                sock.sendall(message)
            except TimeoutError as exc:
                raise httpx.WriteTimeout(str(exc) or "timed out", request=request) from exc
            except OSError as exc:
                raise httpx.WriteError(repr(exc), request=request) from exc
            fp = sock.makefile("rb")
            try:
                sock.settimeout(timeouts.get("read"))
                head = read_head(fp, request.method)
            except BaseException:
                fp.close()  # the reader holds the socket open until closed
                raise
        except TimeoutError as exc:
            self._discard(connection)
            raise httpx.ReadTimeout(str(exc) or "timed out", request=request) from exc
        except ProtocolError as exc:  # a dropped connection, a malformed answer
            self._discard(connection)
            raise httpx.RemoteProtocolError(str(exc), request=request) from exc
        except OSError as exc:
            self._discard(connection)
            raise httpx.ReadError(repr(exc), request=request) from exc
        except BaseException:
            self._discard(connection)
            raise
        return httpx.Response(
            head.status,
            headers=head.headers,
            stream=_Body(self, connection, fp, head, request),
            extensions={"http_version": _VERSIONS[head.version], "reason_phrase": head.reason},
        )

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            self._lines.clear()
        for connection in idle:
            connection.close()
