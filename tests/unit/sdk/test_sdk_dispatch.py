"""The clients' direct request path: the same wire requests as httpx.Client, on the same transport.

Part of it runs against a real loopback HTTP/1.1 server (a thread), so the pooled transport, keep-alive,
gzip, timeouts and connections the server drops are exercised for real, not through a MockTransport.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safesynth.sdk import AsyncClient, BudgetExhausted, Client, ConnectionFailed, ServerError, routes
from safesynth.sdk._dispatch import URL_CACHE_SIZE, RequestFactory
from safesynth.sdk._http import new_idempotency_key
from safesynth.sdk._stdlib_transport import StdlibTransport, _head
from safesynth.sdk.client import _with_timeout

TOKEN = "tok-" + "b" * 40
RESULT = {"dataset": "ds", "kind": "count", "value": 12.5, "epsilon": 0.1, "delta": 0.0, "spend_seq": 4}


# ------------------------------------------------------------------------------------- wire parity


def _headers(request: httpx.Request) -> list[tuple[str, str]]:
    return sorted((k.lower(), v) for k, v in request.headers.multi_items())


_segment = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
_params = st.dictionaries(
    st.sampled_from(["wait", "state", "dataset", "start"]),
    st.one_of(st.integers(0, 10**6), st.floats(0, 60, allow_nan=False), _segment),
    max_size=3,
)


BASES = ("http://127.0.0.1:8765", "https://gw.example:8443/prefix", "http://[::1]:80")


@pytest.fixture(scope="module")
def https() -> Iterator[dict[str, httpx.Client]]:
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "x/y"}
    clients = {base: httpx.Client(base_url=base, headers=headers) for base in BASES}
    yield clients
    for http in clients.values():
        http.close()


@settings(max_examples=150, deadline=None)
@given(
    base=st.sampled_from(BASES),
    method=st.sampled_from(["GET", "POST"]),
    dataset=_segment,
    params=_params,
    key=st.none() | st.text("0123456789abcdef", min_size=32, max_size=32),
    content=st.none() | st.binary(max_size=64),
)
def test_factory_builds_the_request_httpx_builds(
    https: dict[str, httpx.Client],
    base: str,
    method: str,
    dataset: str,
    params: dict[str, Any],
    key: str | None,
    content: bytes | None,
) -> None:
    http = https[base]
    path = routes.path(routes.DATASET_QUERIES, dataset=dataset)
    extra = {routes.IDEMPOTENCY_HEADER: key} if key else {}
    expected_headers = dict(extra)
    if content is not None:
        expected_headers["Content-Type"] = "application/json"
    expected = http.build_request(method, path, params=params, headers=expected_headers, content=content)
    got = RequestFactory(http).build(
        method,
        path,
        params=params,
        headers=extra,
        content=content,
        content_type=None if content is None else "application/json",
    )
    assert got.method == expected.method
    assert str(got.url) == str(expected.url)
    assert got.content == expected.content
    assert _headers(got) == _headers(expected)
    assert got.extensions["timeout"] == expected.extensions["timeout"]


def test_url_cache_is_bounded() -> None:
    with httpx.Client(base_url="http://127.0.0.1:8765") as http:
        factory = RequestFactory(http)
        for i in range(URL_CACHE_SIZE * 3):
            url = factory.url(routes.path(routes.JOB, job=f"job-{i}"))
            assert url.path == f"/v1/jobs/job-{i}"
        assert len(factory._urls) <= URL_CACHE_SIZE


def test_clients_send_on_the_transport_httpx_would_use(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    # plain http, no proxy: http.client in front of httpx's own pool (which keeps anything else)
    with Client(base_url="http://127.0.0.1:8765", token=TOKEN) as client:
        assert isinstance(client._transport, StdlibTransport)
        assert client._transport._fallback is client._http._transport_for_url(
            httpx.URL(client.config.base_url)
        )
    # https: always httpx's pool (TLS stays httpx's)
    with Client(base_url="https://gw.example", token=TOKEN) as tls:
        assert isinstance(tls._transport, httpx.HTTPTransport)
    # a transport given by the caller is used as it is
    given = httpx.HTTPTransport()
    with Client(base_url="http://127.0.0.1:8765", token=TOKEN, transport=given) as own:
        assert own._transport is given
    aclient = AsyncClient(base_url="http://127.0.0.1:8765", token=TOKEN)
    assert isinstance(aclient._transport, httpx.AsyncHTTPTransport)
    asyncio.run(aclient.close())
    # An environment proxy still applies: the proxy's transport is the one used, as through httpx.
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    for base in ("https://gw.example", "http://gw.example"):
        with Client(base_url=base, token=TOKEN, allow_insecure=True) as proxied:
            assert proxied._transport is not None
            assert proxied._transport is not proxied._http._transport
            assert proxied._transport is proxied._http._transport_for_url(httpx.URL(base))


def test_client_timeout_rides_on_each_request_and_can_be_overridden() -> None:
    with Client(base_url="http://127.0.0.1:8765", token=TOKEN, timeout=7.5) as client:
        request = client._requests.build("GET", routes.INFO)
        assert request.extensions["timeout"] == client.config.timeout.as_dict()
        assert _with_timeout(request, 99.0).extensions["timeout"]["read"] == 99.0
        # the override is per request: the next one has the client's timeout again
        assert client._requests.build("GET", routes.INFO).extensions["timeout"]["read"] == 7.5


def test_closed_client_refuses_to_send() -> None:
    client = Client(base_url="http://127.0.0.1:8765", token=TOKEN)
    client.close()
    with pytest.raises(RuntimeError, match="closed"):
        client.budget("ds")


# ------------------------------------------------------------------------------------- a real server

CSV = b"a,b\n" + b"".join(b"%d,x\n" % i for i in range(2000))


@dataclass
class Seen:
    """What the loopback server saw, and switches for how it answers."""

    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    connections: set[int] = field(default_factory=set)  # the clients' ephemeral ports
    gzip: bool = False
    close_after_response: bool = False  # drop each kept-alive connection without saying so
    delay: float = 0.0
    busy: int = 0  # answer this many 503s (Retry-After: 0) first
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def _send(self, status: int, payload: bytes, ctype: str = "application/json", **headers: str) -> None:
        seen: Seen = self.server.seen  # type: ignore[attr-defined]
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if seen.gzip:
            payload = gzip.compress(payload)
            self.send_header("Content-Encoding", "gzip")
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length) if length else b""
        seen: Seen = self.server.seen  # type: ignore[attr-defined]
        with seen.lock:
            seen.requests.append((self.command, self.path, dict(self.headers.items()), body))
            seen.connections.add(self.client_address[1])
            busy, seen.busy = seen.busy, max(0, seen.busy - 1)
        if seen.delay:
            time.sleep(seen.delay)
        if busy:
            self._send(503, json.dumps({"detail": "busy"}).encode(), Retry_After="0")
        elif self.path == "/v1/datasets/broke/queries":
            problem = {"type": "about:blank", "title": "t", "status": 409, "code": "budget_exhausted"}
            self._send(409, json.dumps(problem).encode(), "application/problem+json")
        elif self.path == "/v1/datasets/short/budget":  # declares more than it sends, then hangs up
            self.send_response(200)
            self.send_header("Content-Length", "500")
            self.end_headers()
            self.wfile.write(b'{"dataset"')
            self.close_connection = True
            return
        elif self.path.startswith("/v1/releases/"):  # a chunked download
            self.send_response(200)
            self.send_header("Content-Type", "text/csv")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for start in range(0, len(CSV), 7000):
                part = CSV[start : start + 7000]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self._send(200, json.dumps(RESULT).encode())
        self.wfile.flush()
        if seen.close_after_response:
            self.close_connection = True

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()


@pytest.fixture
def server() -> Iterator[tuple[str, Seen]]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    seen = Seen()
    httpd.seen = seen  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture(params=["stdlib", "httpcore"])
def connect(request: pytest.FixtureRequest) -> Callable[..., Client]:
    """A client on the default transport (http.client) or on httpx's own pool: both must behave alike."""

    def make(url: str, **kwargs: Any) -> Client:
        if request.param == "httpcore":
            kwargs["transport"] = httpx.HTTPTransport()
        client = Client(base_url=url, token=TOKEN, **kwargs)
        client._sleep = lambda _s: None
        expected = StdlibTransport if request.param == "stdlib" else httpx.HTTPTransport
        assert isinstance(client._transport, expected)
        return client

    return make


def _query(client: Client, i: int, dataset: str = "ds") -> float | None:
    return client.query(dataset, "count", epsilon=0.1, purpose="test", filters=[("a", "ge", i)]).value


def test_queries_over_a_real_socket_reuse_one_connection(
    server: tuple[str, Seen], connect: Callable[..., Client]
) -> None:
    url, seen = server
    with connect(url) as client:
        assert [_query(client, i) for i in range(5)] == [12.5] * 5
    assert len(seen.connections) == 1
    keys = set()
    for method, path, headers, body in seen.requests:
        assert (method, path) == ("POST", "/v1/datasets/ds/queries")
        assert headers["Authorization"] == f"Bearer {TOKEN}"
        assert headers["Content-Type"] == "application/json"
        assert headers["Host"] == url.removeprefix("http://")
        assert int(headers["Content-Length"]) == len(body)
        assert json.loads(body)["filters"][0]["column"] == "a"
        keys.add(headers[routes.IDEMPOTENCY_HEADER])
    assert len(keys) == 5  # a fresh idempotency key per logical query


def test_gzip_answers_are_decoded(server: tuple[str, Seen], connect: Callable[..., Client]) -> None:
    url, seen = server
    seen.gzip = True
    with connect(url) as client:
        assert _query(client, 1) == 12.5
    assert "gzip" in seen.requests[0][2]["Accept-Encoding"]


def test_a_connection_the_server_dropped_is_not_reused(
    server: tuple[str, Seen], connect: Callable[..., Client]
) -> None:
    url, seen = server
    seen.close_after_response = True
    with connect(url, max_retries=0) as client:
        for i in range(3):
            time.sleep(0.05)  # the server has closed the previous connection by now
            # max_retries=0: nothing is retried, so a reused stale socket would fail the call
            assert _query(client, i) == 12.5
    assert len(seen.connections) == 3


def test_read_timeout_is_enforced(server: tuple[str, Seen], connect: Callable[..., Client]) -> None:
    url, seen = server
    seen.delay = 1.0
    client = connect(url, timeout=0.2, max_retries=0)
    with client, pytest.raises(ConnectionFailed, match="ReadTimeout"):
        client.budget("ds")


def test_problems_and_retries_over_a_real_socket(
    server: tuple[str, Seen], connect: Callable[..., Client]
) -> None:
    url, seen = server
    with connect(url, max_retries=2) as client:
        with pytest.raises(BudgetExhausted):
            _query(client, 1, dataset="broke")
        seen.busy = 2
        assert _query(client, 2, dataset="busy") == 12.5
        busy = [r for r in seen.requests if r[1] == "/v1/datasets/busy/queries"]
        assert len(busy) == 3 and len({r[2][routes.IDEMPOTENCY_HEADER] for r in busy}) == 1
        seen.busy = 5
        with pytest.raises(ServerError):
            _query(client, 3, dataset="busy")


def test_a_truncated_answer_is_an_error_not_a_short_body(
    server: tuple[str, Seen], connect: Callable[..., Client]
) -> None:
    url, _seen = server
    with connect(url, max_retries=0) as client:
        with pytest.raises(ConnectionFailed, match="RemoteProtocolError"):
            client.budget("short")
        assert _query(client, 1) == 12.5  # the pool recovers


def test_chunked_downloads_stream(
    server: tuple[str, Seen], connect: Callable[..., Client], tmp_path: Path
) -> None:
    url, _seen = server
    with connect(url) as client:
        assert client.releases.content("ab" * 32, format="csv") == CSV
        path = client.releases.download("ab" * 32, tmp_path / "r.csv", format="csv")
        assert path.read_bytes() == CSV
        assert _query(client, 1) == 12.5


def test_nothing_listening_is_connection_failed(connect: Callable[..., Client]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        with connect(f"http://127.0.0.1:{port}", max_retries=1) as client:
            with pytest.raises(ConnectionFailed, match="cannot reach"):
                client.budget("ds")
            assert client.health() is False


def test_threads_share_the_pool(server: tuple[str, Seen], connect: Callable[..., Client]) -> None:
    url, seen = server
    with connect(url) as client, ThreadPoolExecutor(8) as pool:
        values = list(pool.map(lambda i: _query(client, i), range(80)))
    assert values == [12.5] * 80
    assert 1 <= len(seen.connections) <= 8
    assert len(seen.requests) == 80


def test_async_client_over_a_real_socket(server: tuple[str, Seen]) -> None:
    url, seen = server

    async def run() -> list[float | None]:
        async with AsyncClient(base_url=url, token=TOKEN) as client:
            got = []
            for i in range(3):
                result = await client.query("ds", "count", epsilon=0.1, purpose="t", filters=[("a", "ge", i)])
                got.append(result.value)
            return got

    assert asyncio.run(run()) == [12.5] * 3
    assert len(seen.connections) == 1
    assert all(r[2][routes.IDEMPOTENCY_HEADER] for r in seen.requests)


def test_header_injection_is_refused_before_anything_is_sent(
    server: tuple[str, Seen], connect: Callable[..., Client]
) -> None:
    url, seen = server
    with connect(url, max_retries=0) as client:
        with pytest.raises(ConnectionFailed, match="LocalProtocolError"):
            client.submit("ds", epsilon=1.0, purpose="p", idempotency_key="k\r\nX-Evil: 1")
        assert _query(client, 1) == 12.5  # the connection is still usable
    assert [r[1] for r in seen.requests] == ["/v1/datasets/ds/queries"]
    assert all("X-Evil" not in r[2] for r in seen.requests)


def test_stdlib_transport_refuses_illegal_heads() -> None:
    transport = StdlibTransport("127.0.0.1", 9, fallback=httpx.MockTransport(lambda r: httpx.Response(500)))
    for headers in ({"X-A": "v\nw"}, {"X A": "v"}, {"X-A": "v\x00"}):
        request = httpx.Request("GET", "http://127.0.0.1:9/x", headers={"Host": "127.0.0.1:9", **headers})
        with pytest.raises(httpx.LocalProtocolError):
            transport.handle_request(request)
    # not its origin, or not plain http: the fallback answers
    assert transport.handle_request(httpx.Request("GET", "http://127.0.0.1:10/x")).status_code == 500
    assert transport.handle_request(httpx.Request("GET", "https://127.0.0.1:9/x")).status_code == 500
    transport.close()


def test_checked_header_lines_are_cached_within_bounds() -> None:
    seen: dict[tuple[bytes, bytes], bytes] = {}
    for i in range(1000):
        request = httpx.Request("GET", "http://127.0.0.1:9/x", headers={"Host": "h", "X-Key": f"k{i}"})
        head = _head(request, seen)
        assert head == b"GET /x HTTP/1.1\r\nHost: h\r\nX-Key: k%d\r\n\r\n" % i
        assert len(seen) <= 256
    with pytest.raises(httpx.LocalProtocolError):
        _head(httpx.Request("GET", "http://127.0.0.1:9/x", headers={"Host": "h", "X-Key": "a\rb"}), seen)
    assert all(b"\r" not in value for _name, value in seen)


@settings(max_examples=200, deadline=None)
@given(dataset=_segment, job=st.one_of(_segment, st.integers(0, 10**9)))
def test_paths_encode_each_value_into_one_segment(dataset: str, job: str | int) -> None:
    for _ in range(2):  # the second call comes from the cache: same answer
        got = routes.path(routes.DATASET_QUERIES, dataset=dataset)
        assert got.startswith("/v1/datasets/") and got.endswith("/queries")
        segment = got.removeprefix("/v1/datasets/").removesuffix("/queries")
        assert "/" not in segment and unquote(segment) == dataset
        assert routes.path(routes.JOB, job=job) == "/v1/jobs/" + quote(str(job), safe="")


def test_idempotency_keys_are_fresh_128_bit_hex() -> None:
    keys = {new_idempotency_key() for _ in range(1000)}
    assert len(keys) == 1000
    assert all(len(k) == 32 and int(k, 16) >= 0 for k in keys)


def test_each_request_is_logged_as_httpx_logs_it(
    server: tuple[str, Seen], connect: Callable[..., Client], caplog: pytest.LogCaptureFixture
) -> None:
    url, _seen = server
    with caplog.at_level(logging.INFO, logger="httpx"), connect(url) as client:
        _query(client, 1)
        _query(client, 2)
    lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert lines == [f'HTTP Request: POST {url}/v1/datasets/ds/queries "HTTP/1.1 200 OK"'] * 2


def test_idle_connections_expire(server: tuple[str, Seen]) -> None:
    url, seen = server
    base = httpx.URL(url)
    assert base.port is not None
    fallback = httpx.MockTransport(lambda r: httpx.Response(500))
    transport = StdlibTransport(base.host, base.port, fallback=fallback, keepalive_expiry=0.2)

    def get() -> None:
        request = httpx.Request("GET", url + "/v1/info", headers={"Host": base.netloc.decode()})
        response = transport.handle_request(request)
        assert response.status_code == 200 and response.read()
        response.close()

    get()
    get()
    assert len(seen.connections) == 1  # reused while fresh
    time.sleep(0.3)
    get()
    assert len(seen.connections) == 2  # expired: a new connection
    transport.close()
