"""A real HTTP file server on 127.0.0.1 for download tests, with Range support and fault injection.

    with serve(tmp_path) as server:
        server.cut("big.bin", after=1_000_000)          # drop the connection once, mid-body
        download(server.url("big.bin"), dest)
        assert server.range_requests("big.bin")

Faults are set per path (relative to the served directory): an error status (`fail`, `not_found`,
`unavailable`), a connection cut or a stall mid-body, corrupted bytes, no Range support, or short
206 answers. An error status wins over the others, a cut over a stall; a corruption combines with
either. ``times`` counts the requests a fault hits; ``times=None`` means every one.
A stall has no duration: the answer stays silent until the test calls ``server.release()`` (or the
server shuts down), then its connection is dropped, so only the client's own timeout ends it from
the client's side -- nothing depends on how long anything takes.
Every request is recorded (method, path, query, headers) in ``server.requests``, the requests that
stalled in ``server.stalled``, and the body bytes sent per path in ``server.sent``.
"""

from __future__ import annotations

import contextlib
import re
import socket
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit


@dataclass
class Request:
    """One request the server received."""
    method: str
    path: str  # relative to the served directory, without the query string
    query: str
    headers: dict[str, str]


@dataclass
class _Fault:
    times: int | None  # how many more requests it hits; None: all of them
    value: int | None = None  # the status code, or the body bytes sent before a cut or stall

    def fire(self) -> bool:
        """Whether the fault hits this request (counting it)."""
        if self.times is None:
            return True
        if self.times > 0:
            self.times -= 1
            return True
        return False


@dataclass
class _Faults:
    status: _Fault | None = None
    cut: _Fault | None = None
    stall: _Fault | None = None
    corrupt: _Fault | None = None
    ranges: bool = True
    range_cap: int | None = None


@dataclass
class _Plan:
    """What one response does: an error status, or the file, possibly cut, stalled or corrupted."""
    status: int | None = None
    cut: int | None = None
    stall: tuple[int | None] | None = None  # (body bytes sent first, None: before the headers)
    corrupt: bool = False
    ranges: bool = True
    range_cap: int | None = None


class FileServer(ThreadingHTTPServer):
    """Serves the files of `directory`; see the module docstring."""

    daemon_threads = True

    def __init__(self, directory: str | Path):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.directory = Path(directory)
        self.requests: list[Request] = []
        self.stalled: list[Request] = []
        self.sent: dict[str, int] = {}
        self._released = threading.Event()
        self._faults: dict[str, _Faults] = {}
        self._lock = threading.Lock()

    def url(self, relative_path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{quote(relative_path)}"

    def _set(self, path: str, **faults) -> None:
        with self._lock:
            entry = self._faults.setdefault(path, _Faults())
            for name, value in faults.items():
                setattr(entry, name, value)

    def fail(self, path: str, status: int, times: int | None = None) -> None:
        """Answer `status` with an empty body (the next `times` requests)."""
        self._set(path, status=_Fault(times, status))

    def not_found(self, path: str) -> None:
        """Answer 404 every time (a path with no file gets 404 anyway)."""
        self.fail(path, 404)

    def unavailable(self, path: str, times: int | None = 1) -> None:
        """Answer 503 the next `times` requests."""
        self.fail(path, 503, times)

    def cut(self, path: str, after: int, times: int | None = 1) -> None:
        """Send `after` body bytes, then drop the connection (the next `times` requests)."""
        self._set(path, cut=_Fault(times, after))

    def stall(self, path: str, after: int | None = None, times: int | None = 1) -> None:
        """Go silent before the headers, or after `after` body bytes (the next `times` requests),
        until `release` is called; then drop the connection without sending more."""
        self._set(path, stall=_Fault(times, after))

    def release(self) -> None:
        """End every stall, present and future: their connections are dropped."""
        self._released.set()

    def corrupt(self, path: str, times: int | None = 1) -> None:
        """Serve the right length with wrong first bytes (the next `times` requests)."""
        self._set(path, corrupt=_Fault(times))

    def no_ranges(self, path: str) -> None:
        """Ignore Range headers for `path`: always answer 200 with the whole file."""
        self._set(path, ranges=False)

    def cap_ranges(self, path: str, size: int) -> None:
        """Answer a Range request with at most `size` bytes (a legal, shorter 206)."""
        self._set(path, range_cap=size)

    def clear(self, path: str) -> None:
        """Remove every fault set for `path`."""
        with self._lock:
            self._faults.pop(path, None)

    def requests_for(self, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def range_requests(self, path: str) -> list[str]:
        """The Range headers of the requests for `path`."""
        return [r.headers["Range"] for r in self.requests_for(path) if "Range" in r.headers]

    def _plan(self, request: Request) -> _Plan:
        """Record `request` and decide its faults (consuming counted ones)."""
        with self._lock:
            self.requests.append(request)
            faults = self._faults.get(request.path, _Faults())
            if faults.status and faults.status.fire():
                return _Plan(status=faults.status.value)
            cut = faults.cut.value if faults.cut and faults.cut.fire() else None
            stall = cut is None and faults.stall and faults.stall.fire()
            if stall:
                self.stalled.append(request)
            return _Plan(cut=cut, stall=(faults.stall.value,) if stall else None,
                         corrupt=bool(faults.corrupt and faults.corrupt.fire()),
                         ranges=faults.ranges, range_cap=faults.range_cap)

    def _count(self, path: str, size: int) -> None:
        with self._lock:
            self.sent[path] = self.sent.get(path, 0) + size

    def bytes_sent(self, prefix: str = "") -> int:
        """Body bytes sent for the paths starting with `prefix`."""
        with self._lock:
            return sum(n for path, n in self.sent.items() if path.startswith(prefix))

    def handle_error(self, request, client_address) -> None:
        """Stay quiet when a client hangs up (after its timeout or our cut); report the rest."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10
    server: FileServer

    def log_message(self, format, *args) -> None:  # noqa: A002 - keep test output quiet
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        parts = urlsplit(self.path)
        path = unquote(parts.path).lstrip("/")
        plan = self.server._plan(Request(self.command, path, parts.query, dict(self.headers)))
        if plan.stall and plan.stall[0] is None:
            return self._stall()
        file = self.server.directory / path
        if plan.status is not None or not file.is_file():
            return self._empty(plan.status or 404)
        data = file.read_bytes()
        size = len(data)
        ranged = self._range(size) if plan.ranges else None
        if ranged == "invalid":
            return self._empty(416, {"Content-Range": f"bytes */{size}"})
        if ranged:
            start, end = ranged
            if plan.range_cap:
                end = min(end, start + plan.range_cap - 1)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        else:
            start, end = 0, size - 1
            self.send_response(200)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        if not body:
            return
        payload = data[start:end + 1]
        if plan.corrupt:
            payload = bytes(b ^ 0xFF for b in payload[:64]) + payload[64:]
        if plan.cut is not None:
            self.wfile.write(payload[:plan.cut])
            self.server._count(path, len(payload[:plan.cut]))
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if plan.stall:
            sent = plan.stall[0]
            self.wfile.write(payload[:sent])
            self.server._count(path, len(payload[:sent]))
            self.wfile.flush()
            return self._stall()
        self.wfile.write(payload)
        self.server._count(path, len(payload))

    def _stall(self) -> None:
        """Stay silent until the test releases the stalls, then drop the connection."""
        self.server._released.wait()
        self.close_connection = True
        with contextlib.suppress(OSError):  # the client may have hung up (its timeout) already
            self.connection.shutdown(socket.SHUT_RDWR)

    def _range(self, size: int) -> tuple[int, int] | str | None:
        """(start, end) of a single satisfiable byte range, "invalid", or None (no Range)."""
        header = self.headers.get("Range")
        if header is None:
            return None
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip())
        if not match or match[1] == match[2] == "":
            return "invalid"
        if match[1] == "":  # suffix: the last N bytes
            start, end = max(size - int(match[2]), 0), size - 1
        else:
            start = int(match[1])
            end = min(int(match[2]), size - 1) if match[2] else size - 1
        return (start, end) if start <= end else "invalid"

    def _empty(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()


@contextlib.contextmanager
def serve(directory: str | Path) -> Iterator[FileServer]:
    """Run a FileServer for `directory` in a background thread; shut it down on exit."""
    server = FileServer(directory)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release()  # no handler stays stalled
        server.shutdown()
        server.server_close()
        thread.join()
