"""Reading one HTTP/1.1 response (RFC 9112) from a buffered socket reader: head, then body framing.

Used by :mod:`safesynth.sdk._stdlib_transport` instead of ``http.client.HTTPResponse``, whose header
parsing goes through the ``email`` package and was a quarter of the client's CPU per request. It is the
same protocol work, with the same limits as ``http.client`` (lines up to 64 KiB, at most 100 header
fields), and stricter where a lenient reading could desynchronise a kept-alive connection: an invalid
or conflicting ``Content-Length``, a malformed chunk size, obsolete line folding, or a field name with
whitespace before the colon are :class:`ProtocolError`. A test compares it with ``http.client`` on
generated responses.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from io import BufferedReader

__all__ = ["MAX_HEADERS", "MAX_LINE", "BodyReader", "ProtocolError", "ResponseHead", "read_head"]

MAX_LINE = 65536
MAX_HEADERS = 100
_CHUNK = 65536
_STATUS = re.compile(rb"HTTP/1\.([01]) ([0-9]{3})(?: ([^\r\n]*))?").fullmatch
_FIELD = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*(.*?)[ \t]*").fullmatch
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]").search
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;.*)?").fullmatch


class ProtocolError(Exception):
    """The server's answer is not valid HTTP/1.1 (the connection must not be reused)."""


class IncompleteBody(ProtocolError):
    """The connection ended before the body did."""


def _line(fp: BufferedReader) -> bytes:
    line = fp.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE:
        raise ProtocolError("line too long")
    if not line.endswith(b"\n"):
        raise IncompleteBody("connection closed in the middle of a line" if line else "connection closed")
    return line[:-2] if line.endswith(b"\r\n") else line[:-1]


@dataclass(frozen=True, slots=True)
class ResponseHead:
    """Status, headers (raw names, values without surrounding whitespace) and how the body is framed."""

    version: int  # 0 or 1 (HTTP/1.0 or HTTP/1.1)
    status: int
    reason: bytes
    headers: list[tuple[bytes, bytes]]
    #: "none", "length", "chunked" or "close" (until the server closes the connection)
    framing: str
    length: int
    #: True when the connection may carry another request once the body was read to its end
    keep_alive: bool


def _tokens(values: list[bytes]) -> set[bytes]:
    return {token.strip().lower() for value in values for token in value.split(b",") if token.strip()}


def _head_once(fp: BufferedReader, method: str) -> ResponseHead:
    line = _line(fp)
    status_line = _STATUS(line)
    if status_line is None:
        raise ProtocolError(f"not an HTTP/1.x status line: {line[:80]!r}")
    version, status = int(status_line[1]), int(status_line[2])
    headers: list[tuple[bytes, bytes]] = []
    lengths: list[bytes] = []
    encodings: list[bytes] = []
    connection: list[bytes] = []
    while True:
        line = _line(fp)
        if not line:
            break
        if len(headers) >= MAX_HEADERS:
            raise ProtocolError(f"more than {MAX_HEADERS} header fields")
        field = _FIELD(line)
        if field is None or _BAD_VALUE(field[2]):
            raise ProtocolError(f"malformed header field: {line[:80]!r}")
        name, value = field[1], field[2]
        headers.append((name, value))
        lower = name.lower()
        if lower == b"content-length":
            lengths.append(value)
        elif lower == b"transfer-encoding":
            encodings.append(value)
        elif lower == b"connection":
            connection.append(value)
    tokens = _tokens(connection)
    keep_alive = b"close" not in tokens and (version == 1 or b"keep-alive" in tokens)
    if method == "HEAD" or 100 <= status < 200 or status in (204, 304):
        return ResponseHead(version, status, status_line[3] or b"", headers, "none", 0, keep_alive)
    if encodings:
        codings = [c.strip().lower() for value in encodings for c in value.split(b",") if c.strip()]
        if codings and codings[-1] == b"chunked" and version == 1:
            # with a Content-Length too, the message is suspect: read it, then drop the connection
            keep_alive = keep_alive and not lengths
            return ResponseHead(version, status, status_line[3] or b"", headers, "chunked", 0, keep_alive)
        return ResponseHead(version, status, status_line[3] or b"", headers, "close", 0, False)
    if lengths:
        values = {v.strip() for value in lengths for v in value.split(b",")}
        if len(values) != 1:
            raise ProtocolError("conflicting Content-Length values")
        (value,) = values
        if not value.isdigit() or len(value) > 18:
            raise ProtocolError(f"invalid Content-Length: {value[:40]!r}")
        return ResponseHead(version, status, status_line[3] or b"", headers, "length", int(value), keep_alive)
    return ResponseHead(version, status, status_line[3] or b"", headers, "close", 0, False)


def read_head(fp: BufferedReader, method: str) -> ResponseHead:
    """The next final response head (interim 1xx answers other than 101 are skipped)."""
    while True:
        head = _head_once(fp, method)
        if not 100 <= head.status < 200 or head.status == 101:
            return head


class BodyReader:
    """Yields the body of ``head`` from ``fp`` as it arrives; ``complete`` once it was read to its end."""

    __slots__ = ("_fp", "_head", "complete")

    def __init__(self, fp: BufferedReader, head: ResponseHead) -> None:
        self._fp = fp
        self._head = head
        self.complete = head.framing == "none"

    def __iter__(self) -> Iterator[bytes]:
        framing = self._head.framing
        if framing == "length":
            yield from self._fixed(self._head.length)
        elif framing == "chunked":
            yield from self._chunked()
        elif framing == "close":
            while chunk := self._fp.read1(_CHUNK):
                yield chunk
        self.complete = True

    def _fixed(self, remaining: int) -> Iterator[bytes]:
        read1 = self._fp.read1
        while remaining:
            chunk = read1(min(remaining, _CHUNK))
            if not chunk:
                raise IncompleteBody(f"connection closed with {remaining} body bytes still to come")
            remaining -= len(chunk)
            yield chunk

    def _chunked(self) -> Iterator[bytes]:
        while True:
            line = _line(self._fp)
            size = _CHUNK_SIZE(line)
            if size is None:
                raise ProtocolError(f"malformed chunk size line: {line[:40]!r}")
            n = int(size[1], 16)
            if n == 0:
                break
            yield from self._fixed(n)
            if _line(self._fp):
                raise ProtocolError("chunk data not followed by CRLF")
        for _ in range(MAX_HEADERS + 1):  # trailer fields, ignored
            if not _line(self._fp):
                return
        raise ProtocolError(f"more than {MAX_HEADERS} trailer fields")
