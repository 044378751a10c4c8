"""The SDK's HTTP/1.1 response reader against the standard library's http.client, and on bad input."""

from __future__ import annotations

import http.client
import io
from typing import Any

import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

from safesynth.sdk._http11 import MAX_HEADERS, BodyReader, IncompleteBody, ProtocolError, read_head


class _Sock:
    """Enough of a socket for http.client.HTTPResponse."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(io.BytesIO(self._data))  # type: ignore[arg-type]


def _ours(data: bytes, method: str = "GET") -> tuple[Any, bytes, io.BufferedReader]:
    fp = io.BufferedReader(io.BytesIO(data))  # type: ignore[arg-type]
    head = read_head(fp, method)
    reader = BodyReader(fp, head)
    body = b"".join(reader)
    assert reader.complete
    return head, body, fp


_token = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~", min_size=1, max_size=20
)
_value = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40).map(lambda v: v.strip())
_reserved = {"content-length", "transfer-encoding", "connection", "keep-alive", "proxy-connection"}
_fields = st.lists(
    st.tuples(
        _token.filter(lambda n: n.lower() not in _reserved), _value, st.sampled_from(["", " ", "  ", "\t"])
    ),
    max_size=12,
)


@st.composite
def responses(draw: st.DrawFn) -> tuple[bytes, str, dict[str, Any]]:
    version = draw(st.sampled_from([0, 1]))
    status = draw(st.sampled_from([200, 201, 202, 204, 304, 400, 404, 409, 429, 500, 503]))
    reason = draw(st.sampled_from(["OK", "Not Found", "", "Some Reason Here"]))
    method = draw(st.sampled_from(["GET", "POST", "HEAD"]))
    fields = draw(_fields)
    body = draw(st.binary(max_size=3000))
    no_body = method == "HEAD" or status in (204, 304)
    # (http.client reads a chunked body even after 204/304, where RFC 9112 says there is none)
    chunked_ok = version == 1 and not no_body
    framing = draw(st.sampled_from(["length", "chunked", "close"] if chunked_ok else ["length", "close"]))
    connection = draw(st.sampled_from([None, "close", "keep-alive"]))
    eol = draw(st.sampled_from(["\r\n", "\n"]))
    lines = [f"HTTP/1.{version} {status}" + (f" {reason}" if reason else "")]
    lines += [f"{name}:{ows}{value}{ows}" for name, value, ows in fields]
    if connection:
        lines.append(f"Connection: {connection}")
    payload = b""
    if framing == "length":
        lines.append(f"Content-Length: {len(body)}")
        payload = body
    elif framing == "chunked":
        lines.append("Transfer-Encoding: chunked")
        cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=6)))
        pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
        for piece in (p for p in pieces if p):
            ext = draw(st.sampled_from(["", ";name=value", " "]))
            payload += b"%x%s\r\n%s\r\n" % (len(piece), ext.encode(), piece)
        payload += b"0\r\n"
        if draw(st.booleans()):
            payload += b"Trailer-Field: x\r\n"
        payload += b"\r\n"
    else:
        payload = body
    data = (eol.join(lines) + eol + eol).encode("latin-1") + (b"" if no_body else payload)
    expected = {
        "status": status,
        "body": b"" if no_body else body,
        "fields": [(n, v) for n, v, _ in fields],
        "framing": framing,
        "connection": connection,
        "version": version,
        "no_body": no_body,
    }
    return data, method, expected


@settings(max_examples=300, deadline=None)
@given(case=responses())
def test_reads_what_http_client_reads(case: tuple[bytes, str, dict[str, Any]]) -> None:
    data, method, expected = case
    note(repr((data, method)))
    head, body, _fp = _ours(data, method)
    reference = http.client.HTTPResponse(_Sock(data), method=method)  # type: ignore[arg-type]
    reference.begin()
    assert head.status == reference.status == expected["status"]
    assert head.reason.decode("latin-1") == reference.reason
    assert body == reference.read() == expected["body"]
    ours = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in head.headers]
    theirs = [(n, v.strip()) for n, v in reference.getheaders()]
    assert ours == theirs
    assert ours[: len(expected["fields"])] == expected["fields"]
    # keep-alive: never when the body runs to the close; http.client agrees on the rest
    if expected["framing"] == "close" and not expected["no_body"]:
        assert not head.keep_alive
    assert head.keep_alive == (not reference.will_close)


def test_interim_answers_are_skipped_and_the_next_response_follows() -> None:
    data = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
        b"HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nyes"
    )
    fp = io.BufferedReader(io.BytesIO(data))  # type: ignore[arg-type]
    first = read_head(fp, "POST")
    assert (first.status, b"".join(BodyReader(fp, first))) == (200, b"hi")
    second = read_head(fp, "POST")
    assert (second.status, b"".join(BodyReader(fp, second))) == (201, b"yes")


BAD_HEADS = [
    b"HTTP/2 200 OK\r\n\r\n",
    b"HTTP/1.1 2000 OK\r\n\r\n",
    b"SSH-2.0-OpenSSH\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nBad Name: v\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nName : v\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nno-colon\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nA: b\r\n folded\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nA: b\x00c\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n" + b"".join(b"H%d: v\r\n" % i for i in range(MAX_HEADERS + 1)) + b"\r\n",
    b"HTTP/1.1 200 OK\r\nA: " + b"x" * 70000 + b"\r\n\r\n",
    b"",
    b"HTTP/1.1 200 OK\r\nA: b",
]


@pytest.mark.parametrize("data", BAD_HEADS)
def test_malformed_heads_are_protocol_errors(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        _ours(data)


BAD_BODIES = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"f" * 17 + b"\r\n",
]


@pytest.mark.parametrize("data", BAD_BODIES)
def test_malformed_or_cut_bodies_are_protocol_errors(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        _ours(data)


def test_cut_body_is_an_incomplete_body() -> None:
    with pytest.raises(IncompleteBody):
        _ours(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort")


def test_chunked_with_content_length_is_read_but_not_kept_alive() -> None:
    head, body, _ = _ours(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
    )
    assert body == b"ok" and head.framing == "chunked" and not head.keep_alive


def test_http10_keeps_alive_only_when_asked() -> None:
    plain, _, _ = _ours(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
    asked, _, _ = _ours(b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n")
    closing, _, _ = _ours(b"HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 0\r\n\r\n")
    assert (plain.keep_alive, asked.keep_alive, closing.keep_alive) == (False, True, False)
