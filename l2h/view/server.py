"""The viewer's HTTP server: the page and its libraries, map tiles, point queries, region outlines, and
the run's result files (read-only).

Routes (GET, and HEAD for the same headers):
- ``/`` and ``/static/<file>``: the page (l2h/view/web) and the npm-installed Leaflet under it;
- ``/api/layers.json``: layers, zoom ranges, bounds and the legend;
- ``/tiles/<layer>/<z>/<x>/<y>.png``: a map tile of ``map``, ``confidence`` or ``imagery``;
- ``/api/point?lon=&lat=``: the class, confidence and coarse label at a point;
- ``/api/regions.geojson``: the region outlines;
- ``/results/<path>``: files under the run's ``results`` folder (COGs, quicklooks, STAC), streamed, with
  byte ranges (GDAL reads a COG from there with ``/vsicurl/``).
A path that leaves its folder (``..``, an absolute path, a link out) is refused with 403.
"""

from __future__ import annotations

import errno
import functools
import json
import logging
import mimetypes
import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from l2h.core.errors import InputError
from l2h.view.layers import NotFound, RunLayers, bounds_lonlat, legend, point_info, regions_geojson, render_tile

log = logging.getLogger(__name__)
WEB = Path(__file__).parent / "web"
LEAFLET = WEB / "node_modules" / "leaflet" / "dist"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_TILE = re.compile(r"^/tiles/(map|confidence|imagery)/(\d+)/(\d+)/(\d+)\.png$")


def contained(base: Path, relative: str) -> Path | None:
    """``base/relative`` if that names a file inside `base` (after resolving ``..`` and links), else None."""
    base = base.resolve()
    target = (base / relative.lstrip("/")).resolve()
    return target if target.is_relative_to(base) and target.is_file() else None


class _Handler(BaseHTTPRequestHandler):
    server: ViewerServer

    def log_message(self, fmt: str, *args) -> None:  # requests at debug level, not on stderr
        log.debug("%s %s", self.address_string(), fmt % args)

    def _send(self, status: int, body: bytes, content_type: str, cache: bool = False) -> None:
        self._started = True
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=3600" if cache else "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: HTTPStatus, message: str) -> None:
        self._send(status, json.dumps({"error": message}).encode(), "application/json")

    def _file(self, base: Path, relative: str) -> None:
        if relative.startswith("/") or "\\" in relative:
            return self._error(HTTPStatus.FORBIDDEN, "absolute paths are refused")
        target = contained(base, relative)
        if target is None:
            inside = (base.resolve() / relative).resolve().is_relative_to(base.resolve())
            return self._error(HTTPStatus.NOT_FOUND if inside else HTTPStatus.FORBIDDEN,
                               "no such file" if inside else "outside the served folder")
        self._stream(target)

    def _stream(self, target: Path) -> None:
        """Send a file in parts (a national COG never sits in memory), honouring one byte range, so that
        GDAL's /vsicurl/ and QGIS can read a COG straight from the viewer."""
        size = target.stat().st_size
        first, last = 0, size - 1
        status = HTTPStatus.OK
        match = _RANGE.match(self.headers.get("Range", ""))
        start, end = (match.groups() if match else ("", ""))
        if (start or end) and not (start and end and int(start) > int(end)):  # an invalid range is ignored
            first = int(start) if start else max(0, size - int(end))
            last = min(int(end), size - 1) if start and end else last
            if first > last:  # starts past the end, or an empty suffix
                self._started = True
                self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                return self.end_headers()
            status = HTTPStatus.PARTIAL_CONTENT
        self._started = True
        self.send_response(status)
        self.send_header("Content-Type", mimetypes.guess_type(target.name)[0] or "application/octet-stream")
        self.send_header("Content-Length", str(last - first + 1))
        self.send_header("Accept-Ranges", "bytes")
        if status == HTTPStatus.PARTIAL_CONTENT:
            self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if self.command == "HEAD":
            return
        with target.open("rb") as f:
            f.seek(first)
            left = last - first + 1
            while left > 0 and (part := f.read(min(left, 1 << 20))):
                self.wfile.write(part)
                left -= len(part)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        """Answer one request (see the module's routes)."""
        self._started = False
        url = urlsplit(self.path)
        path = unquote(url.path)
        layers = self.server.layers
        if not self.server.host_allowed(self.headers.get("Host", "")):
            return self._error(HTTPStatus.FORBIDDEN, "unexpected Host header (the viewer answers its own address)")
        if "\x00" in path:
            return self._error(HTTPStatus.BAD_REQUEST, "NUL in the path")
        try:
            if path in ("/", "/index.html"):
                return self._file(WEB, "index.html")
            if path.startswith("/static/leaflet/"):
                return self._file(LEAFLET, path.removeprefix("/static/leaflet/"))
            if path.startswith("/static/"):
                return self._file(WEB, path.removeprefix("/static/"))
            if path.startswith("/results/"):
                return self._file(layers.root / "results", path.removeprefix("/results/"))
            if match := _TILE.match(path):
                layer, z, x, y = match.group(1), *map(int, match.groups()[1:])
                return self._send(HTTPStatus.OK, render_tile(layers, layer, z, x, y), "image/png", cache=True)
            if path == "/api/layers.json":
                return self._send(HTTPStatus.OK, self.server.layers_json(), "application/json")
            if path == "/api/regions.geojson":
                return self._send(HTTPStatus.OK, self.server.regions_json(), "application/geo+json")
            if path == "/api/point":
                query = parse_qs(url.query)
                try:
                    lon, lat = float(query["lon"][0]), float(query["lat"][0])
                except (KeyError, ValueError):
                    return self._error(HTTPStatus.BAD_REQUEST, "give lon and lat in degrees")
                body = json.dumps(point_info(layers, lon, lat)).encode()
                return self._send(HTTPStatus.OK, body, "application/json")
            return self._error(HTTPStatus.NOT_FOUND, f"no route {path}")
        except NotFound as exc:
            return self._error(HTTPStatus.NOT_FOUND, str(exc))
        except ConnectionError:  # the browser moved on
            return None
        except Exception as exc:  # noqa: BLE001 - one bad tile must not stop the server
            log.warning("%s: %s", path, exc)
            if self._started:  # the answer is under way: it cannot turn into an error any more
                self.close_connection = True
                return None
            return self._error(HTTPStatus.INTERNAL_SERVER_ERROR, str(exc))


    def do_HEAD(self) -> None:  # noqa: N802 - http.server's name
        """The headers of a GET without its body (GDAL's /vsicurl/ asks for the size first)."""
        self.do_GET()


class ViewerServer(ThreadingHTTPServer):
    """A threaded HTTP server over one run's layers."""

    daemon_threads = True

    def __init__(self, layers: RunLayers, host: str = "127.0.0.1", port: int = 8000):
        self.layers = layers
        self._lock = threading.Lock()
        try:
            super().__init__((host, port), _Handler)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise InputError(f"view: port {port} on {host} is in use; choose another with --port") from None
            raise InputError(f"view: cannot listen on {host}:{port} ({exc.strerror or exc}); choose another "
                             f"--host (an IPv4 address) or --port") from None
        loopback = self.server_address[0].startswith("127.")
        self._hosts = {f"{name}:{self.server_address[1]}" for name in ("127.0.0.1", "localhost")} if loopback else None

    def host_allowed(self, host: str) -> bool:
        """Whether a request's Host header names this server: on loopback only its own address, so that a
        web page elsewhere cannot reach the maps through a DNS name pointed at 127.0.0.1 (DNS rebinding)."""
        return self._hosts is None or host.lower() in self._hosts

    def handle_error(self, request, client_address) -> None:
        """A connection that broke mid-answer is logged at debug level, not printed as a traceback."""
        log.debug("request from %s failed", client_address, exc_info=True)

    @property
    def url(self) -> str:
        """The page's address."""
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    @functools.cached_property
    def _regions(self) -> bytes:
        return regions_geojson(self.layers).encode()

    def regions_json(self) -> bytes:
        """The region outlines (GeoJSON), computed once."""
        with self._lock:
            return self._regions

    def layers_json(self) -> bytes:
        """The page's description of the run: layers, zooms, bounds, legend."""
        layers = self.layers
        doc = {"title": layers.name, "bounds": bounds_lonlat(layers), "legend": legend(),
               "layers": [{"id": name, "minzoom": low, "maxzoom": high} for name, (low, high) in layers.zooms.items()],
               "regions": sorted(layers.regions)}
        return json.dumps(doc).encode()


def check_web_libraries() -> None:
    """Fail with the set-up step to run when the page's npm packages are missing."""
    if not (LEAFLET / "leaflet.js").is_file():
        raise InputError(f"view: the page's web map library is not installed ({LEAFLET / 'leaflet.js'}): run "
                         f"`npm ci --prefix {WEB}` (make install does when npm is on the machine)")
