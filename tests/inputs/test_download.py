"""Downloads against a real HTTP server on 127.0.0.1: resume, retries, verification, atomicity."""

import hashlib
import logging
import random
import re
import socket
from types import SimpleNamespace

import pytest
from httpserver import serve

from l2h.inputs.download import DownloadError, download, download_many, redact

SIZE = 3_000_000
FAST = dict(backoff=0.001, timeout=5, progress=False)


@pytest.fixture
def source(tmp_path):
    """A folder with a 3 MB file of random bytes, `a.bin`; returns (folder, bytes, sha256)."""
    folder = tmp_path / "remote"
    folder.mkdir()
    data = random.Random(42).randbytes(SIZE)
    (folder / "a.bin").write_bytes(data)
    return folder, data, hashlib.sha256(data).hexdigest()


@pytest.fixture
def server(source):
    with serve(source[0]) as running:
        yield running


def part_of(dest):
    return dest.with_name(dest.name + ".part")


def test_plain_download_verified(server, source, tmp_path):
    _, data, sha = source
    dest = tmp_path / "out" / "a.bin"
    assert download(server.url("a.bin"), dest, sha256=sha, expected_size=SIZE, **FAST) == dest
    assert dest.read_bytes() == data
    assert not part_of(dest).exists()
    assert len(server.requests_for("a.bin")) == 1


def test_cut_transfer_resumes_with_range(server, source, tmp_path):
    _, data, sha = source
    server.cut("a.bin", after=1_000_000)
    dest = tmp_path / "a.bin"
    download(server.url("a.bin"), dest, sha256=sha, **FAST)
    assert dest.read_bytes() == data
    [header] = server.range_requests("a.bin")
    offset = int(re.fullmatch(r"bytes=(\d+)-", header)[1])
    assert 0 < offset <= 1_000_000
    assert len(server.requests_for("a.bin")) == 2


def test_interrupted_run_leaves_no_final_file_and_next_run_resumes(server, source, tmp_path):
    _, data, sha = source
    server.cut("a.bin", after=500_000, times=None)
    dest = tmp_path / "a.bin"
    with pytest.raises(DownloadError, match="after 2 attempts"):
        download(server.url("a.bin"), dest, sha256=sha, retries=1, **FAST)
    assert not dest.exists()
    kept = part_of(dest).stat().st_size
    assert 0 < kept < SIZE
    server.clear("a.bin")
    download(server.url("a.bin"), dest, sha256=sha, **FAST)
    assert dest.read_bytes() == data
    assert server.range_requests("a.bin")[-1] == f"bytes={kept}-"
    assert not part_of(dest).exists()


@pytest.mark.parametrize("after", [None, 1_000_000], ids=["before_headers", "mid_body"])
def test_stalled_server_times_out_and_is_retried(server, source, tmp_path, after, caplog):
    """The first answer goes silent (before its headers, or after 1 MB of body) and stays silent until
    the test releases it, so only the client's timeout can end it: the client gives up on it, retries
    once (resuming after the bytes it kept) and gets the whole file."""
    _, data, sha = source
    server.stall("a.bin", after=after)
    dest = tmp_path / "a.bin"
    caplog.set_level(logging.WARNING, logger="l2h.inputs.download")
    download(server.url("a.bin"), dest, sha256=sha, backoff=0.001, timeout=1, progress=False)
    server.release()
    assert dest.read_bytes() == data
    first, second = server.requests_for("a.bin")  # exactly two: the stalled one and its retry
    assert server.stalled == [first]
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "attempt 1 of 6 failed" in warning and "timed out" in warning.lower()
    if after is None:  # nothing arrived: the retry starts from scratch
        assert "Range" not in second.headers and server.bytes_sent("a.bin") == SIZE
    else:  # the retry resumes after the whole body bytes the client kept (at most the 1 MB sent)
        offset = int(re.fullmatch(r"bytes=(\d+)-", second.headers["Range"])[1])
        assert 0 < offset <= 1_000_000 and server.bytes_sent("a.bin") == 1_000_000 + SIZE - offset


def test_stale_partial_file_longer_than_the_remote_is_discarded(server, source, tmp_path):
    _, data, sha = source
    dest = tmp_path / "a.bin"
    part_of(dest).write_bytes(b"x" * (SIZE + 10))  # e.g. left by an older, larger version
    download(server.url("a.bin"), dest, sha256=sha, **FAST)
    assert server.range_requests("a.bin") == [f"bytes={SIZE + 10}-"]  # answered 416
    assert dest.read_bytes() == data


def test_short_206_answers_are_completed(server, source, tmp_path):
    _, data, _ = source
    server.cut("a.bin", after=1_000_000)
    server.cap_ranges("a.bin", 1_000_000)  # each resume brings at most 1 MB
    dest = tmp_path / "a.bin"
    download(server.url("a.bin"), dest, **FAST)  # no sha256: the Content-Range total must do
    assert dest.read_bytes() == data
    assert len(server.range_requests("a.bin")) >= 2


def test_backoff_doubles_and_is_capped(server, tmp_path, monkeypatch):
    delays = []
    monkeypatch.setattr("l2h.inputs.download.time.sleep", delays.append)
    server.unavailable("a.bin", times=None)
    with pytest.raises(DownloadError, match="after 10 attempts"):
        download(server.url("a.bin"), tmp_path / "a.bin", retries=9, backoff=0.5, progress=False)
    assert delays == [0.5, 1, 2, 4, 8, 16, 32, 60, 60]


def test_server_without_ranges_restarts_from_scratch(server, source, tmp_path):
    _, data, sha = source
    server.no_ranges("a.bin")
    server.cut("a.bin", after=1_000_000)
    dest = tmp_path / "a.bin"
    download(server.url("a.bin"), dest, **FAST)  # no sha256: only the size check guards this
    assert server.range_requests("a.bin")  # it asked to resume, got 200, and rewrote the file
    assert dest.read_bytes() == data


def test_corrupt_transfer_is_refetched_from_scratch(server, source, tmp_path):
    _, data, sha = source
    server.corrupt("a.bin")
    dest = tmp_path / "a.bin"
    download(server.url("a.bin"), dest, sha256=sha, **FAST)
    assert dest.read_bytes() == data
    assert len(server.requests_for("a.bin")) == 2
    assert server.range_requests("a.bin") == []  # the corrupt bytes were not resumed onto


def test_corrupt_every_time_fails_and_keeps_nothing(server, source, tmp_path):
    _, _, sha = source
    server.corrupt("a.bin", times=None)
    dest = tmp_path / "a.bin"
    with pytest.raises(DownloadError, match="after 3 attempts: sha256 mismatch"):
        download(server.url("a.bin"), dest, sha256=sha, retries=2, **FAST)
    assert not dest.exists() and not part_of(dest).exists()


def test_wrong_expected_size_fails(server, tmp_path):
    dest = tmp_path / "a.bin"
    with pytest.raises(DownloadError, match=f"size mismatch: got {SIZE} bytes, expected 123"):
        download(server.url("a.bin"), dest, expected_size=123, retries=1, **FAST)
    assert not dest.exists()


@pytest.mark.parametrize("status, reason", [(404, "not found (HTTP 404)"), (410, "not found (HTTP 410)"),
                                            (403, "HTTP 403")])
def test_client_errors_fail_at_once(server, tmp_path, status, reason):
    server.fail("a.bin", status)
    dest = tmp_path / "a.bin"
    label = "esa_worldcover tile N30E114"
    with pytest.raises(DownloadError) as info:
        download(server.url("a.bin"), dest, label=label, retries=5, backoff=30, timeout=5, progress=False)
    message = str(info.value)
    assert label in message and server.url("a.bin") in message and reason in message
    assert len(server.requests_for("a.bin")) == 1
    assert not dest.exists()


def test_missing_remote_file_is_404(server, tmp_path):
    with pytest.raises(DownloadError, match=r"nope\.bin: not found \(HTTP 404\)"):
        download(server.url("nope.bin"), tmp_path / "nope.bin", **FAST)


def test_503_twice_then_success(server, source, tmp_path):
    _, data, sha = source
    server.unavailable("a.bin", times=2)
    dest = tmp_path / "a.bin"
    download(server.url("a.bin"), dest, sha256=sha, **FAST)
    assert dest.read_bytes() == data
    assert len(server.requests_for("a.bin")) == 3


def test_503_forever_gives_up_with_attempt_count(server, tmp_path):
    server.unavailable("a.bin", times=None)
    dest = tmp_path / "a.bin"
    with pytest.raises(DownloadError, match="gave up after 4 attempts: HTTP 503"):
        download(server.url("a.bin"), dest, retries=3, label="tile", **FAST)
    assert len(server.requests_for("a.bin")) == 4
    assert not dest.exists()


def test_connection_refused_is_retried(tmp_path):
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DownloadError, match="gave up after 3 attempts"):
        download(f"http://127.0.0.1:{port}/x.bin", tmp_path / "x.bin", retries=2, **FAST)


def test_existing_verified_file_is_not_fetched(server, source, tmp_path):
    _, data, sha = source
    dest = tmp_path / "a.bin"
    dest.write_bytes(data)
    assert download(server.url("a.bin"), dest, sha256=sha, expected_size=SIZE, **FAST) == dest
    assert server.requests == []


def test_existing_file_that_fails_verification_is_replaced(server, source, tmp_path):
    _, data, sha = source
    dest = tmp_path / "a.bin"
    dest.write_bytes(b"stale")
    download(server.url("a.bin"), dest, sha256=sha, **FAST)
    assert dest.read_bytes() == data


@pytest.mark.parametrize("as_url", [True, False])
def test_local_sources(source, tmp_path, as_url):
    folder, data, sha = source
    path = folder / "a.bin"
    dest = tmp_path / "copy" / "a.bin"
    download(path.as_uri() if as_url else str(path), dest, sha256=sha, expected_size=SIZE, **FAST)
    assert dest.read_bytes() == data


def test_missing_local_source_named(tmp_path):
    missing = tmp_path / "absent.tif"
    with pytest.raises(DownloadError, match=f"my label: .*no such file: {re.escape(str(missing))}"):
        download(missing.as_uri(), tmp_path / "out.tif", label="my label", **FAST)
    assert not (tmp_path / "out.tif").exists()


def test_local_source_with_wrong_checksum_leaves_nothing(source, tmp_path):
    folder, _, _ = source
    dest = tmp_path / "a.bin"
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        download(str(folder / "a.bin"), dest, sha256="0" * 64, **FAST)
    assert list(tmp_path.iterdir()) == [folder]


def test_unsupported_scheme(tmp_path):
    with pytest.raises(DownloadError, match="unsupported URL scheme 'ftp'"):
        download("ftp://example.org/a.bin", tmp_path / "a.bin", **FAST)


def test_download_many_reports_failures_after_the_rest_lands(server, source, tmp_path):
    folder, data, sha = source
    for name in ("b.bin", "c.bin"):
        (folder / name).write_bytes(data[:1000] + name.encode())
    jobs = [
        {"url": server.url("a.bin"), "dest": tmp_path / "a.bin", "sha256": sha, "label": "tile A"},
        {"url": server.url("gone.bin"), "dest": tmp_path / "gone.bin", "label": "tile GONE"},
        SimpleNamespace(url=server.url("b.bin"), dest=tmp_path / "b.bin", expected_size=1005,
                        sha256=None, label="tile B"),
        {"url": str(folder / "c.bin"), "dest": tmp_path / "c.bin"},
    ]
    with pytest.raises(DownloadError) as info:
        download_many(jobs, max_workers=2, progress=False)
    message = str(info.value)
    assert message.startswith("1 of 4 downloads failed")
    assert "tile GONE" in message and server.url("gone.bin") in message
    assert "tile A" not in message
    assert (tmp_path / "a.bin").read_bytes() == data
    assert (tmp_path / "b.bin").read_bytes() == data[:1000] + b"b.bin"
    assert (tmp_path / "c.bin").exists()
    assert not (tmp_path / "gone.bin").exists()


def test_download_many_returns_paths_in_job_order(server, tmp_path):
    jobs = [{"url": server.url("a.bin"), "dest": tmp_path / f"{i}.bin"} for i in range(3)]
    assert download_many(jobs, progress=False) == [tmp_path / f"{i}.bin" for i in range(3)]


@pytest.mark.parametrize("url, secret", [
    ("https://h/x.tif?key=S3CRET&year=2021", "S3CRET"),
    ("https://h/x.tif?year=2021&access_token=S3CRET", "S3CRET"),
    ("https://h/x.tif?api_key=S3CRET#frag", "S3CRET"),
    ("https://h/x.tif?TOKEN=S3CRET", "S3CRET"),
    ("https://h/x.tif?sv=2022&sig=S3CRET", "S3CRET"),
    ("https://user:S3CRET@h/x.tif", "S3CRET"),
])
def test_redact(url, secret):
    hidden = redact(url)
    assert secret not in hidden and "***" in hidden and "h/x.tif" in hidden


def test_redact_keeps_the_rest_of_the_url():
    assert redact("https://h/x.tif?key=S3CRET&year=2021#f") == "https://h/x.tif?key=***&year=2021#f"
    assert redact("https://h/monkey.tif?year=2021") == "https://h/monkey.tif?year=2021"


def test_secrets_never_in_errors_or_logs(server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="l2h.inputs.download")
    server.unavailable("a.bin", times=None)
    with pytest.raises(DownloadError) as info:
        download(server.url("a.bin") + "?key=S3CRET&v=2", tmp_path / "a.bin", retries=2, **FAST)
    assert "S3CRET" not in str(info.value) and "key=***&v=2" in str(info.value)
    assert "attempt 1 of 3 failed" in caplog.text and "S3CRET" not in caplog.text
    assert server.requests_for("a.bin")[0].query == "key=S3CRET&v=2"  # the server did get the key

    with socket.socket() as sock:  # requests' own exception text quotes the URL too
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DownloadError) as info:
        download(f"http://127.0.0.1:{port}/x.bin?access_token=S3CRET", tmp_path / "x.bin",
                 retries=1, **FAST)
    assert "S3CRET" not in str(info.value) and "S3CRET" not in caplog.text


def test_malformed_url_fails_at_once_redacted(tmp_path):
    with pytest.raises(DownloadError, match=r"my tile: cannot download http:///x\.bin\?key=\*\*\*") as info:
        download("http:///x.bin?key=S3CRET", tmp_path / "x.bin", label="my tile", **FAST)
    assert "S3CRET" not in str(info.value)


def test_local_write_errors_name_the_download(server, tmp_path):
    (tmp_path / "blocker").write_text("a file where a folder should be")
    with pytest.raises(DownloadError, match="my tile: cannot download .*a.bin: .*blocker"):
        download(server.url("a.bin"), tmp_path / "blocker" / "a.bin", label="my tile", **FAST)


def test_download_many_rejects_duplicate_destinations(server, tmp_path):
    jobs = [{"url": server.url("a.bin"), "dest": tmp_path / "a.bin"}] * 2
    with pytest.raises(ValueError, match="same destination"):
        download_many(jobs, progress=False)
    assert server.requests == []


@pytest.mark.parametrize("name, body, headers, problem", [
    ("tile.tif", b"<!DOCTYPE html><html><body>Service unavailable</body></html>", {}, "HTML page"),
    ("tile.tif", b"II*\x00 but served as a page", {"Content-Type": "text/html; charset=utf-8"}, "text/html"),
    ("roads.osm.pbf", b"\x00\x00\x00\x0dnot an osm file at all", {}, "not an OSM PBF file"),
    ("regions.gpkg", b"PK\x03\x04 a zip, not a GeoPackage", {}, "not a GeoPackage"),
])
def test_content_that_is_not_the_promised_file_never_takes_its_name(tmp_path, name, body, headers, problem):
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            for key, value in {"Content-Type": "application/octet-stream", **headers}.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with pytest.raises(DownloadError, match=problem) as err:
            download(f"http://127.0.0.1:{httpd.server_address[1]}/{name}", tmp_path / name, retries=3, **FAST)
    finally:
        httpd.shutdown()
    assert "gave up" not in str(err.value)  # refused at once: another attempt gets the same page
    assert not (tmp_path / name).exists() and not list(tmp_path.glob("*.part"))


def test_a_local_copy_is_checked_too_and_a_bad_cached_file_is_fetched_again(tmp_path):
    (tmp_path / "page.tif").write_bytes(b"<html>login</html>")
    with pytest.raises(DownloadError, match="HTML page"):
        download(tmp_path / "page.tif", tmp_path / "out" / "tile.tif", **FAST)
    assert not (tmp_path / "out" / "tile.tif").exists()
    good = b"II*\x00" + bytes(100)
    (tmp_path / "good.tif").write_bytes(good)
    (tmp_path / "out" / "tile.tif").write_bytes(b"<html>an old error page kept by an earlier version</html>")
    download(tmp_path / "good.tif", tmp_path / "out" / "tile.tif", **FAST)
    assert (tmp_path / "out" / "tile.tif").read_bytes() == good


def test_file_url_with_a_host_is_refused(tmp_path):
    with pytest.raises(DownloadError, match="names the host 'fileserver'"):
        download("file://fileserver/share/a.tif", tmp_path / "a.tif", **FAST)


def test_ctrl_c_stops_download_many_at_once_and_the_next_run_resumes(server, source, tmp_path, monkeypatch):
    """SIGINT (Ctrl-C) while the first of three downloads transfers: the queued ones never start, the
    one in flight stops at its next part (its .part kept), so the command ends at once rather than after
    every download (its threads would hold the exit); the next run resumes the partial file."""
    import signal
    import threading

    import l2h.inputs.download as dl

    _, data, sha = source
    jobs = [{"url": server.url("a.bin"), "dest": tmp_path / f"{i}.bin", "sha256": sha} for i in range(3)]
    check, calls = dl._check, []

    def ctrl_c_after_the_first_part(cancel):
        calls.append(cancel)
        if len(calls) == 2:  # SIGINT to the main thread, as Ctrl-C delivers it; on once it was seen
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
            assert cancel.wait(300)
        check(cancel)

    monkeypatch.setattr(dl, "_check", ctrl_c_after_the_first_part)
    with pytest.raises(KeyboardInterrupt):
        download_many(jobs, max_workers=1, progress=False)
    assert len(calls) == 2 and len(server.requests_for("a.bin")) == 1  # the other two never started
    assert not any(job["dest"].exists() or part_of(job["dest"]).exists() for job in jobs[1:])
    assert not jobs[0]["dest"].exists()
    kept = part_of(jobs[0]["dest"]).stat().st_size
    assert 0 < kept < SIZE

    monkeypatch.setattr(dl, "_check", check)
    assert download_many(jobs, max_workers=1, progress=False) == [job["dest"] for job in jobs]
    assert all(job["dest"].read_bytes() == data for job in jobs)
    assert server.range_requests("a.bin") == [f"bytes={kept}-"]
