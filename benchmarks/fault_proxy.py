"""A fault-injecting HTTP proxy for object storage: in front of a local S3 server (moto's), it
forwards requests unchanged, except a deterministic share that it answers with HTTP 503 and an
S3 ``SlowDown`` error, or whose connection it resets.

A shared module of the fault suite (``fault_object_storage.py`` and its tests), never run.

Faults are planned per HTTP method (``GET``, ``HEAD``, ``PUT``, ``POST``...; S3 reads are GET
and HEAD, writes PUT and POST, multipart uploads included): the n-th request of a method (from
1) gets the fault whose offset is ``n % every`` (:class:`FaultPlan`), so that a run that sends
the same requests meets the same faults, and a retry (the next request of its method) never
meets the same fault as the request it retries. The faults:

- ``slowdown``: the request is read but not forwarded; the answer is 503 with the ``SlowDown``
  XML body S3 sends when throttling.
- ``reset``: the request is read but not forwarded; the connection is reset (TCP RST) before
  any byte of an answer.
- ``reset_mid``: the request is forwarded (a write is applied), then the first half of the
  answer's bytes (status line, headers, body) is sent and the connection reset.

:attr:`FaultProxy.injected` counts what was injected, per method and fault;
:attr:`FaultProxy.requests` every request seen per method.
"""

from __future__ import annotations

import http.client
import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAULTS = ("slowdown", "reset", "reset_mid")
SLOWDOWN_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message>"
    b"<RequestId>fault-proxy</RequestId></Error>"
)
# headers that describe one hop of a connection, never forwarded as they are
HOP_HEADERS = {"connection", "keep-alive", "expect", "transfer-encoding", "proxy-connection"}


@dataclass(frozen=True)
class FaultPlan:
    """Which request meets which fault.

    ``every``: the period, per method; request n (from 1) of a method meets ``faults[i]`` when
    ``n % every == offsets[i]``, offsets spread evenly over the period and never 1 (so the
    first request of each method goes through). 0: no fault. ``always``: a fault every request
    after the first ``start`` of its method meets instead (a storage that is down, or goes
    down). ``methods``: the methods faults apply to.
    """

    every: int = 0
    faults: tuple[str, ...] = FAULTS
    always: str | None = None
    start: int = 0
    methods: frozenset[str] = frozenset({"GET", "HEAD", "PUT", "POST"})

    def __post_init__(self) -> None:
        unknown = set(self.faults) | {self.always} - {None}
        if unknown - set(FAULTS):
            raise ValueError(f"unknown faults {sorted(unknown - set(FAULTS))}; known: {FAULTS}")
        if self.every and self.every < 2 * len(self.faults):
            raise ValueError(f"every={self.every}: needs at least 2 requests per fault")

    def offsets(self) -> dict[int, str]:
        """``{n % every: fault}`` of the periodic faults."""
        step = self.every // len(self.faults)
        return {(2 + i * step) % self.every: fault for i, fault in enumerate(self.faults)}

    def fault(self, method: str, number: int) -> str | None:
        """The fault request ``number`` (from 1) of ``method`` meets, or None."""
        if method not in self.methods:
            return None
        if self.always:
            return self.always if number > self.start else None
        return self.offsets().get(number % self.every) if self.every else None


class FaultProxy:
    """The proxy on 127.0.0.1 (a free port) in front of ``upstream`` (``http://host:port``),
    serving from a thread between :meth:`start` and :meth:`stop` (or as a context manager)."""

    def __init__(self, upstream: str, plan: FaultPlan) -> None:
        host, port = upstream.removeprefix("http://").rstrip("/").rsplit(":", 1)
        self.upstream = (host, int(port))
        self.plan = plan
        self.requests: Counter[str] = Counter()  # method -> requests seen
        self.injected: Counter[tuple[str, str]] = Counter()  # (method, fault) -> injected
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The proxy's endpoint URL (``AWS_ENDPOINT_URL``)."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *_) -> None:
        self.stop()

    def take(self, method: str) -> str | None:
        """Count one request of ``method``; the fault it meets (counted too), or None."""
        with self._lock:
            self.requests[method] += 1
            fault = self.plan.fault(method, self.requests[method])
            if fault:
                self.injected[method, fault] += 1
            return fault

    def snapshot(self) -> dict[str, dict[str, int]]:
        """``{method: {"requests": n, fault: n, ...}}`` so far (faults injected at least once)."""
        with self._lock:
            table = {method: {"requests": n} for method, n in sorted(self.requests.items())}
            for (method, fault), n in sorted(self.injected.items()):
                table[method][fault] = n
            return table


def injected_since(
    before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]
) -> dict[str, dict[str, int]]:
    """The difference of two :meth:`FaultProxy.snapshot`: what a stage met (non-zero entries)."""
    table = {}
    for method, counts in after.items():
        earlier = before.get(method, {})
        row = {key: n - earlier.get(key, 0) for key, n in counts.items()}
        if any(row.values()):
            table[method] = {key: n for key, n in row.items() if n}
    return table


def _handler_class(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(_ProxyHandler):
        owner = proxy

    return Handler


class _ProxyHandler(BaseHTTPRequestHandler):
    """One client connection (keep-alive, HTTP/1.1): each request is read whole, then faulted
    or forwarded on a fresh upstream connection."""

    protocol_version = "HTTP/1.1"
    owner: FaultProxy

    def log_message(self, *_) -> None:  # quiet: the counts are the log
        pass

    def _handle(self) -> None:
        body = self._read_body()
        fault = self.owner.take(self.command)
        if fault == "reset":
            self._reset()
            return
        if fault == "slowdown":
            self._send(self._slowdown())
            return
        answer = self._forward(body)
        if fault == "reset_mid":
            self.wfile.write(answer[: len(answer) // 2])
            self._reset()
            return
        self._send(answer)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _handle

    def _read_body(self) -> bytes:
        """The request's body: ``Content-Length`` bytes, or the chunks of a chunked body."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip(), 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline().strip():  # trailers, up to the empty line
                pass
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _forward(self, body: bytes) -> bytes:
        """The upstream server's whole answer to this request, as bytes to send back."""
        connection = http.client.HTTPConnection(*self.owner.upstream, timeout=60)
        try:
            connection.putrequest(
                self.command, self.path, skip_host=True, skip_accept_encoding=True
            )
            for name, value in self.headers.items():
                if name.lower() not in HOP_HEADERS | {"content-length"}:
                    connection.putheader(name, value)
            if body or self.command in ("PUT", "POST"):
                connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            response = connection.getresponse()
            payload = response.read()
            headers = [
                (name, value)
                for name, value in response.getheaders()
                if name.lower() not in HOP_HEADERS | {"content-length"}
            ]
            length = response.getheader("Content-Length") if self.command == "HEAD" else None
            headers.append(("Content-Length", length or str(len(payload))))
            return _answer(response.status, response.reason, headers, payload)
        finally:
            connection.close()

    def _slowdown(self) -> bytes:
        body = b"" if self.command == "HEAD" else SLOWDOWN_BODY
        headers = [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))]
        return _answer(503, "Slow Down", headers, body)

    def _send(self, answer: bytes) -> None:
        self.wfile.write(answer)
        if self.headers.get("Connection", "").lower() == "close":
            self.close_connection = True

    def _reset(self) -> None:
        """Close the client connection with a TCP RST (no orderly shutdown)."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True


def _answer(status: int, reason: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}"] + [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
