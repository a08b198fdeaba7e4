"""Robust file fetching: http(s) with resume and retries, file:// URLs and local paths.

A download streams into ``<dest>.part`` next to the destination, resumes an interrupted transfer
with an HTTP Range request (also in a later run: the partial file stays), verifies the size and,
when known, the sha256, checks that the content is what the file name promises (a GeoTIFF, a
GeoPackage, an OSM PBF..., not a server's HTML error page), and only then renames the file onto
``dest``. So ``dest`` is either absent or complete. A URL names its secrets as ``${VARIABLE}``
(see :mod:`l2h.core.secrets`): they are substituted only for the request, and never reach messages or logs.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import requests
from tqdm import tqdm

from l2h.core.errors import ConfigError, L2HError
from l2h.core.io import atomic_path, sha256_file
from l2h.core.secrets import expand, redact

log = logging.getLogger(__name__)

CHUNK = 256 * 1024
MAX_DELAY = 60.0  # seconds: cap of the exponential back-off
_RETRY_STATUS = {408, 429}  # 4xx answers that mean "try again later"; all 5xx are retried too


class DownloadError(L2HError):
    """A file could not be fetched or failed verification; the message names the URL and what.

    `not_found` is true when the server (or a local mirror) has no such file at all.
    """

    def __init__(self, message: str, not_found: bool = False):
        super().__init__(message)
        self.not_found = not_found


class _Retry(Exception):
    """A failure worth another attempt (5xx, short read, checksum mismatch)."""


class _Fatal(Exception):
    """A failure another attempt would not fix (404, 403...)."""


class _NotFound(_Fatal):
    """The file does not exist there (HTTP 404/410)."""


class _Cancelled(Exception):
    """The download was told to stop (``cancel`` set: the command was interrupted)."""


def _check(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise _Cancelled("interrupted")


def _error(url: str, label: str, problem: str, not_found: bool = False) -> DownloadError:
    return DownloadError(redact(f"{label}: cannot download {url}: {problem}"), not_found=not_found)


def _mismatch(path: Path, expected_size: int | None, sha256: str | None) -> str | None:
    """What is wrong with the file at `path` (size, then checksum), or None if it verifies."""
    size = path.stat().st_size
    if expected_size is not None and size != expected_size:
        return f"size mismatch: got {size} bytes, expected {expected_size}"
    if sha256 is not None and (actual := sha256_file(path)) != sha256.lower():
        return f"sha256 mismatch: got {actual}, expected {sha256.lower()}"
    return None


_MAGIC = {  # file name ending -> (what it is, the byte strings such a file starts with)
    ".tif": ("a GeoTIFF", (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")),
    ".gpkg": ("a GeoPackage", (b"SQLite format 3\x00",)),
    ".zip": ("a zip archive", (b"PK\x03\x04",)),
}
_MAGIC[".tiff"] = _MAGIC[".tif"]


def content_problem(path: str | os.PathLike, name: str | None = None) -> str | None:
    """Why the bytes of `path` are not what its name (or `name`) promises, or None.

    Known endings are checked by their leading bytes (GeoTIFF, GeoPackage, OSM PBF, zip); any file
    that is empty or starts like an HTML page (a server's error or login page) is refused.
    """
    name = (name or Path(path).name).lower()
    with open(path, "rb") as f:
        head = f.read(64)
    if not head:
        return "the file is empty"
    if head.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return "the server sent an HTML page, not the file (an error or login page?)"
    suffix = ".osm.pbf" if name.endswith(".osm.pbf") else Path(name).suffix
    if suffix == ".osm.pbf" or suffix == ".pbf":  # 4-byte header length, then a BlobHeader "OSMHeader"
        if head[4:5] != b"\x0a" or head[6:15] != b"OSMHeader":
            return "not an OSM PBF file (no OSMHeader block at its start)"
    elif suffix in _MAGIC:
        what, magics = _MAGIC[suffix]
        if not head.startswith(magics):
            return f"not {what} (its first bytes are {head[:8]!r})"
    return None


def _url_problem(url: str) -> str | None:
    """Why `download` cannot fetch `url`, or None: it takes http(s)://, a file:// URL without a host
    (or with localhost), or a local path."""
    parts = urlsplit(url)
    if len(parts.scheme) > 1 and parts.scheme not in ("http", "https", "file"):  # 1 letter: a drive
        return f"unsupported URL scheme {parts.scheme!r} (use http(s)://, file:// or a local path)"
    if parts.scheme == "file" and parts.netloc not in ("", "localhost"):
        return (f"a file:// URL names the host {parts.netloc!r}, but l2h reads only local files: write "
                "file:///path (three slashes)")
    return None


def check_url(url: str, key: str) -> None:
    """ConfigError naming the config `key` unless `download` can fetch `url` (see `_url_problem`)."""
    if problem := _url_problem(url):
        raise ConfigError(redact(f"config key '{key}': {url}: {problem}"))


def local_path(url: str) -> Path | None:
    """The path behind a file:// URL or a plain path; None for other URLs."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        return Path(url2pathname(unquote(parts.path)))
    return Path(url) if parts.scheme == "" else None


def download(url: str | os.PathLike, dest: str | os.PathLike, *, expected_size: int | None = None,
             sha256: str | None = None, retries: int = 5, backoff: float = 0.5, timeout: float = 60,
             progress: bool = True, label: str | None = None, cancel: threading.Event | None = None) -> Path:
    """Fetch `url` (http(s)://, file:// or a local path) to `dest` and return `dest`.

    `retries` is the number of further attempts after a failed one (connection lost, timeout,
    5xx, short or corrupt transfer), waiting ``backoff * 2**n`` seconds (at most a minute) before
    the n-th. 404/410 and other 4xx fail at once. An existing `dest` that verifies is kept.
    `label` (default: the file name) names the file in the progress bar and every error.
    `cancel` (set by :func:`download_many` when interrupted): the download stops at its next part or
    retry, ``dest`` untouched (a partial HTTP transfer stays in ``<dest>.part`` for the next run).
    """
    url, dest = str(url), Path(dest)
    label = label or dest.name
    if dest.exists():
        problem = _mismatch(dest, expected_size, sha256) or content_problem(dest)
        if problem is None:
            log.info("%s: %s already present", label, dest)
            return dest
        log.warning("%s: existing %s fails verification (%s); fetching again", label, dest, problem)
    if problem := _url_problem(url):
        raise _error(url, label, problem)
    source = local_path(url)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tqdm(desc=label, unit="B", unit_scale=True, unit_divisor=1024, disable=not progress,
                  file=sys.stderr, leave=False) as bar:
            if source is not None:
                _copy(Path(expand(str(source), label)), dest, url, label, expected_size, sha256, bar, cancel)
            else:
                _fetch(url, expand(url, label), dest, label, expected_size, sha256, retries, backoff,
                       timeout, bar, cancel)
    except OSError as exc:  # disk full, permissions...: name the download too
        raise _error(url, label, str(exc)) from exc
    log.info("%s: downloaded %s", label, dest)
    return dest


def _copy(source: Path, dest: Path, url: str, label: str, expected_size: int | None,
          sha256: str | None, bar: tqdm, cancel: threading.Event | None = None) -> None:
    """Copy a local file atomically, then verify it (no retries: a copy would not change)."""
    if not source.is_file():
        raise _error(url, label, f"no such file: {source}", not_found=True)
    bar.reset(total=source.stat().st_size)
    with atomic_path(dest, verify=False) as tmp:  # checked below: size, checksum, content
        with open(source, "rb") as src, open(tmp, "wb") as dst:
            while block := src.read(CHUNK):
                _check(cancel)
                dst.write(block)
                bar.update(len(block))
        if problem := _mismatch(tmp, expected_size, sha256) or content_problem(tmp, dest.name):
            raise _error(url, label, problem)


def _fetch(url: str, real_url: str, dest: Path, label: str, expected_size: int | None, sha256: str | None,
           retries: int, backoff: float, timeout: float, bar: tqdm, cancel: threading.Event | None = None) -> None:
    """Download `real_url` (`url` with its secrets) over HTTP into ``<dest>.part`` with resume and
    retries, verify it, then rename it onto dest. Messages name `url`, never `real_url`."""
    part = dest.with_name(dest.name + ".part")
    failures = 0
    with requests.Session() as session:
        while True:
            try:
                _transfer(session, real_url, part, timeout, bar, cancel)
                if problem := _mismatch(part, expected_size, sha256):
                    part.unlink()  # never resume onto corrupt data
                    raise _Retry(problem)
                if problem := content_problem(part, dest.name):
                    part.unlink()
                    raise _Fatal(problem)
                os.replace(part, dest)
                return
            except _Fatal as exc:
                raise _error(url, label, str(exc), not_found=isinstance(exc, _NotFound)) from None
            except (_Retry, requests.ConnectionError, requests.Timeout,
                    requests.exceptions.ChunkedEncodingError) as exc:
                failures += 1
                if failures > retries:
                    raise _error(url, label, f"gave up after {failures} attempts: {exc}") from None
                delay = min(backoff * 2 ** (failures - 1), MAX_DELAY)
                log.warning("%s", redact(f"{label}: attempt {failures} of {retries + 1} failed "
                                         f"({exc}); retrying {url} in {delay:.2g} s"))
                if cancel is None:
                    time.sleep(delay)
                elif cancel.wait(delay):  # the wait, cut short by an interrupt
                    raise _Cancelled("interrupted") from None
            except requests.RequestException as exc:  # malformed URL, too many redirects...
                raise _error(url, label, str(exc)) from None


def _transfer(session: requests.Session, url: str, part: Path, timeout: float, bar: tqdm,
              cancel: threading.Event | None = None) -> None:
    """One attempt: append to `part` from where it stops (Range) or rewrite it from the start.

    Raises `_Retry` for a retryable status or an incomplete body, `_Fatal` for other errors.
    """
    have = part.stat().st_size if part.exists() else 0
    headers = {"Accept-Encoding": "identity"}  # byte-exact bodies: no transparent gunzip
    if have:
        headers["Range"] = f"bytes={have}-"
    with session.get(url, headers=headers, stream=True, timeout=timeout) as response:
        status = response.status_code
        if status == 416 and have:  # the partial file is not a prefix of this file any more
            part.unlink()
            raise _Retry("server refused to resume (HTTP 416); restarting")
        if status >= 500 or status in _RETRY_STATUS:
            raise _Retry(f"HTTP {status} {response.reason}")
        if status in (404, 410):
            raise _NotFound(f"not found (HTTP {status})")
        if status not in (200, 206):
            raise _Fatal(f"HTTP {status} {response.reason}")
        if response.headers.get("Content-Type", "").lower().startswith("text/html"):
            raise _Fatal(f"the server answered HTTP {status} with an HTML page (Content-Type text/html), "
                         "not the file (an error or login page?)")
        total = _expected_total(response, have, part)
        if status == 200:
            have = 0  # no resume support (or no partial file): start over
        bar.reset(total=total)
        bar.update(have)
        with open(part, "ab" if have else "wb") as f:
            for block in response.iter_content(CHUNK):
                _check(cancel)  # the partial file stays: the next run resumes it
                f.write(block)
                bar.update(len(block))
    size = part.stat().st_size
    if total is not None and size != total:
        raise _Retry(f"short transfer: got {size} of {total} bytes")


def _expected_total(response: requests.Response, have: int, part: Path) -> int | None:
    """The full file size the server announces (Content-Range total, else Content-Length)."""
    if response.status_code == 206:
        match = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", ""))
        if not match or int(match[1]) != have:
            part.unlink(missing_ok=True)
            raise _Retry(f"unexpected Content-Range {response.headers.get('Content-Range')!r}")
        return int(match[2]) if match[2] != "*" else None
    length = response.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


def _field(job, name: str, default=None):
    """A job's field, whether the job is a mapping or an object with attributes."""
    return job.get(name, default) if isinstance(job, dict) else getattr(job, name, default)


def download_many(jobs: Iterable, max_workers: int = 4, progress: bool = True,
                  return_errors: bool = False) -> list[Path | DownloadError]:
    """Run `download` for each job (url, dest, optional expected_size, sha256, label, retries,
    backoff, timeout) in parallel.

    All jobs run to the end; if any failed, one DownloadError lists every failure, unless
    `return_errors`, where each job's result is its path or its DownloadError, in job order.
    """
    jobs = list(jobs)
    dests = [Path(_field(job, "dest")).resolve() for job in jobs]
    if len(set(dests)) < len(dests):
        raise ValueError("download_many: several jobs write the same destination")

    interrupted = threading.Event()

    def run(job) -> Path:
        options = {k: _field(job, k) for k in ("retries", "backoff", "timeout") if _field(job, k) is not None}
        return download(_field(job, "url"), _field(job, "dest"), progress=progress,
                        expected_size=_field(job, "expected_size"), sha256=_field(job, "sha256"),
                        label=_field(job, "label"), cancel=interrupted, **options)

    with ThreadPoolExecutor(max_workers=max_workers) as pool:
        futures = []
        try:
            for job in jobs:
                futures.append(pool.submit(run, job))
            wait(futures)
        except BaseException:  # Ctrl-C: the queued downloads do not start, those in flight stop at their next
            for future in futures:  # part (leaving the pool waits for its threads, and so would the exit)
                future.cancel()
            interrupted.set()
            raise
    paths, failures = [], []
    for future in futures:
        try:
            paths.append(future.result())
        except DownloadError as exc:
            failures.append(exc)
            paths.append(exc)
    if return_errors:
        return paths
    if failures:
        listing = "\n".join(f"  - {exc}" for exc in failures)
        raise DownloadError(f"{len(failures)} of {len(jobs)} downloads failed:\n{listing}") \
            from failures[0]
    return paths


def url_filename(url: str) -> str:
    """The file name a URL points to, without query or fragment ("…/china-latest.osm.pbf?x=1" ->
    "china-latest.osm.pbf")."""
    name = Path(unquote(urlsplit(url).path)).name
    if not name:
        raise DownloadError(redact(f"cannot tell a file name from the URL {url}"))
    return name
