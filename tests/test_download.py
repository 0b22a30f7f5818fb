"""recgen download against a real HTTP server on 127.0.0.1 serving a real KuaiRec-layout zip: full download,
resume (same run and next run), servers that ignore Range, cut, fail, corrupt or serve another size,
fallback between sources, an archive already there, and the downloaded zip read by `recgen ingest`."""

import contextlib
import fcntl
import hashlib
import http.server
import io
import re
import shlex
import socket
import threading
import zipfile
from pathlib import Path

import pytest
from conftest import run_cli

from recgen.ingest.download import PART_SUFFIX, ZIP_NAME, _content_range
from recgen.ingest.source import locate_data

DATA_FOLDER = "KuaiRec 2.0/data"


@pytest.fixture(scope="module")
def archive(tiny_sample) -> bytes:
    """The tiny sample zipped in the real archive's layout (`KuaiRec 2.0/data/*.csv`)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zipped:
        for csv_file in sorted((tiny_sample / DATA_FOLDER).glob("*.csv")):
            zipped.write(csv_file, f"{DATA_FOLDER}/{csv_file.name}")
    return buffer.getvalue()


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves the archive honouring `Range: bytes=N-`, misbehaving as the server's plan for the path says."""

    def do_GET(self):  # noqa: N802 (http.server's name)
        server: FileServer = self.server.owner
        mode = server.next_mode(self.path)
        server.requests.append((self.path, self.headers.get("Range")))
        payload = server.payload
        if mode == "500":
            self.send_error(500, "Internal Server Error")
            return
        if mode == "html":
            self._send(200, b"<html><body>Please confirm the download</body></html>", {"Content-Type": "text/html"})
            return
        if mode == "corrupt":
            middle = len(payload) // 2
            payload = payload[:middle] + bytes([payload[middle] ^ 0xFF]) + payload[middle + 1 :]
        requested = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if requested and mode != "ignore-range":
            start = int(requested.group(1))
            if start >= len(payload):
                self._send(416, b"", {"Content-Range": f"bytes */{len(payload)}"})
                return
            status, body = 206, payload[start:]
            headers = {"Content-Range": f"bytes {start}-{len(payload) - 1}/{len(payload)}"}
        else:
            status, body, headers = 200, payload, {}
        headers["Content-Type"] = "application/zip"
        if mode != "no-length":
            headers["Content-Length"] = str(len(body))
        if mode.startswith("cut:"):  # announce the whole body, send its first bytes, hang up
            body = body[: int(mode.split(":")[1])]
        self._send(status, body, headers)

    def _send(self, status, body, headers):
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        with contextlib.suppress(OSError):  # the client may hang up first, on purpose
            self.wfile.write(body)

    def log_message(self, *args):
        pass


class FileServer:
    """A threaded HTTP/1.0 server; `plan(path, modes)` sets how successive requests for `path` are served
    (the last mode repeats): ok, cut:N, 500, corrupt, ignore-range, no-length, html."""

    def __init__(self, payload: bytes):
        self.payload = payload
        self.plans: dict[str, list[str]] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.owner = self
        self.httpd.handle_error = lambda request, address: None
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def plan(self, path: str, *modes: str) -> str:
        self.plans[path] = list(modes)
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def next_mode(self, path: str) -> str:
        modes = self.plans.get(path, ["ok"])
        return modes.pop(0) if len(modes) > 1 else modes[0]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(archive):
    running = FileServer(archive)
    yield running
    running.close()


@pytest.fixture
def refused_url() -> str:
    """A URL on a local port nobody listens on (connection refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/KuaiRec.zip"


def md5_of(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def download(dest: Path, archive: bytes, *urls: str, size: int | None = None, md5: str | None = None, env=None):
    args = ["download", "--dest", str(dest)]
    for url in urls:
        args += ["--url", url]
    args += ["--size", str(len(archive) if size is None else size), "--md5", md5 or md5_of(archive)]
    return run_cli(*args, env=env)


def test_downloads_verifies_and_prints_the_command_that_reads_the_zip(tmp_path, server, archive):
    url = server.plan("/KuaiRec.zip", "ok")
    dest = tmp_path / "data"
    result = download(dest, archive, url)
    assert result.exit_code == 0, result.output
    target = dest / ZIP_NAME
    assert target.read_bytes() == archive
    assert not (dest / (ZIP_NAME + PART_SUFFIX)).exists()
    assert server.requests == [("/KuaiRec.zip", None)]
    assert f"from {url}" in result.stdout
    command = shlex.split(result.stdout.strip().splitlines()[-1].removeprefix("next: "))
    assert command == ["recgen", "run-batch", "--data-dir", str(target)]
    # What run-batch would read: the zip given directly, or the folder holding it.
    assert locate_data(dest).root == locate_data(target).root == target
    ingested = run_cli("ingest", "--data-dir", command[-1], "--db", str(tmp_path / "recs.db"))
    assert ingested.exit_code == 0, ingested.output
    assert "loaded 7 file(s)" in ingested.stdout
    assert "duplicate rows;" in ingested.stdout  # the sample's big_matrix has exact duplicates, as the real one


def test_an_interrupted_download_resumes_with_a_range_request_in_the_same_run(tmp_path, server, archive):
    url = server.plan("/KuaiRec.zip", "cut:1000", "ok")
    result = download(tmp_path, archive, url)
    assert result.exit_code == 0, result.output
    assert [rng for _path, rng in server.requests] == [None, "bytes=1000-"]
    assert "connection closed at byte 1,000" in result.stderr
    assert md5_of((tmp_path / ZIP_NAME).read_bytes()) == md5_of(archive)


def test_an_interrupted_download_is_kept_and_resumed_by_the_next_run(tmp_path, server, archive):
    url = server.plan("/KuaiRec.zip", "cut:1000", "500")
    first = download(tmp_path, archive, url)
    assert first.exit_code == 66, first.output
    part = tmp_path / (ZIP_NAME + PART_SUFFIX)
    assert part.read_bytes() == archive[:1000]
    assert not (tmp_path / ZIP_NAME).exists()
    error = first.stderr.strip().splitlines()[-1]
    assert error.startswith(f"Error: could not download {ZIP_NAME} (tried {url}: HTTP 500")
    assert error.endswith(f"1,000 of {len(archive):,} bytes kept in {part}, run again to resume")

    server.requests.clear()
    server.plan("/KuaiRec.zip", "ok")
    second = download(tmp_path, archive, url)
    assert second.exit_code == 0, second.output
    assert server.requests == [("/KuaiRec.zip", "bytes=1000-")]
    assert (tmp_path / ZIP_NAME).read_bytes() == archive
    assert not part.exists()


def test_a_server_ignoring_range_is_read_again_from_the_start(tmp_path, server, archive):
    (tmp_path / (ZIP_NAME + PART_SUFFIX)).write_bytes(b"x" * 1000)  # these bytes must not survive
    url = server.plan("/KuaiRec.zip", "ignore-range")
    result = download(tmp_path, archive, url)
    assert result.exit_code == 0, result.output
    assert server.requests == [("/KuaiRec.zip", "bytes=1000-")]
    assert "ignored the resume request" in result.stderr
    assert (tmp_path / ZIP_NAME).read_bytes() == archive


def test_a_complete_part_is_verified_without_any_request(tmp_path, server, archive):
    (tmp_path / (ZIP_NAME + PART_SUFFIX)).write_bytes(archive)
    result = download(tmp_path, archive, server.plan("/KuaiRec.zip", "500"))
    assert result.exit_code == 0, result.output
    assert server.requests == []
    assert (tmp_path / ZIP_NAME).read_bytes() == archive


def test_a_corrupt_download_is_refused_and_its_part_removed(tmp_path, server, archive):
    url = server.plan("/KuaiRec.zip", "corrupt")
    result = download(tmp_path, archive, url)
    assert result.exit_code == 65, result.output
    part = tmp_path / (ZIP_NAME + PART_SUFFIX)
    middle = len(archive) // 2
    corrupt = archive[:middle] + bytes([archive[middle] ^ 0xFF]) + archive[middle + 1 :]
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith(f"Error: {part} is corrupt")
    assert f"MD5 {md5_of(corrupt)}, expected {md5_of(archive)}" in error
    assert not part.exists() and not (tmp_path / ZIP_NAME).exists()


def test_a_server_offering_another_size_is_refused_before_any_byte_is_kept(tmp_path, server, archive):
    url = server.plan("/KuaiRec.zip", "ok")
    result = download(tmp_path, archive, url, size=len(archive) + 1)
    assert result.exit_code == 65, result.output
    assert f"offers a file of {len(archive):,} bytes, expected {len(archive) + 1:,}" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_short_file_without_length_is_refused_and_kept(tmp_path, server, archive):
    url = server.plan("/KuaiRec.zip", "no-length")
    expected = len(archive) + 10
    result = download(tmp_path, archive, url, size=expected)
    assert result.exit_code == 65, result.output
    assert [rng for _path, rng in server.requests] == [None, f"bytes={len(archive)}-"]  # answered 416
    assert f"the server's file has {len(archive):,} bytes, expected {expected:,}" in result.stderr
    assert (tmp_path / (ZIP_NAME + PART_SUFFIX)).read_bytes() == archive
    assert not (tmp_path / ZIP_NAME).exists()


def test_a_longer_file_without_length_is_refused(tmp_path, server, archive):
    url = server.plan("/KuaiRec.zip", "no-length")
    result = download(tmp_path, archive, url, size=len(archive) - 10)
    assert result.exit_code == 65, result.output
    assert f"sent more than the expected {len(archive) - 10:,} bytes" in result.stderr
    assert not (tmp_path / ZIP_NAME).exists()


def test_every_source_failing_is_one_line_naming_each(tmp_path, server, archive, refused_url):
    first = server.plan("/a/KuaiRec.zip", "500")
    second = server.plan("/b/KuaiRec.zip", "html")
    result = download(tmp_path, archive, first, second, refused_url)
    assert result.exit_code == 66, result.output
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith(f"Error: could not download {ZIP_NAME} (tried {first}: HTTP 500")
    assert f"{second}: answered with a web page" in error
    assert f"{refused_url}: [Errno 111] Connection refused" in error
    assert list(tmp_path.iterdir()) == []  # no empty .part left behind


def test_falls_back_from_a_failing_source_to_the_next(tmp_path, server, archive, refused_url):
    failing = server.plan("/mirror/KuaiRec.zip", "500")
    working = server.plan("/KuaiRec.zip", "ok")
    env = {"RECGEN_DOWNLOAD_URL": f"{refused_url} {failing} {working}"}
    result = download(tmp_path, archive, env=env)
    assert result.exit_code == 0, result.output
    assert f"{failing} failed: HTTP 500" in result.stderr
    assert f"from {working}" in result.stdout
    assert [path for path, _rng in server.requests] == ["/mirror/KuaiRec.zip", "/KuaiRec.zip"]
    assert (tmp_path / ZIP_NAME).read_bytes() == archive


def test_a_verified_archive_already_there_is_not_downloaded_again(tmp_path, server, archive):
    (tmp_path / ZIP_NAME).write_bytes(archive)
    result = download(tmp_path, archive, server.plan("/KuaiRec.zip", "ok"))
    assert result.exit_code == 0, result.output
    assert server.requests == []
    assert "already there, size and MD5 verified: nothing downloaded" in result.stdout
    assert result.stdout.strip().endswith(f"next: recgen run-batch --data-dir {tmp_path / ZIP_NAME}")


def test_a_wrong_archive_already_there_is_refused_and_left_alone(tmp_path, server, archive):
    (tmp_path / ZIP_NAME).write_bytes(archive[:-1] + b"!")
    result = download(tmp_path, archive, server.plan("/KuaiRec.zip", "ok"))
    assert result.exit_code == 65, result.output
    assert "already exists but its MD5 is" in result.stderr and "move or delete it" in result.stderr
    assert server.requests == []
    assert (tmp_path / ZIP_NAME).read_bytes() == archive[:-1] + b"!"


def test_a_second_download_into_the_same_folder_is_refused(tmp_path, server, archive):
    with open(tmp_path / (ZIP_NAME + PART_SUFFIX), "ab") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = download(tmp_path, archive, server.plan("/KuaiRec.zip", "ok"))
    assert result.exit_code == 75, result.output
    assert "another recgen download is writing" in result.stderr
    assert server.requests == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--md5", "not-an-md5"], "MD5 must be 32 hexadecimal digits"),
        (["--url", "ftp://example.org/KuaiRec.zip"], "must start with http:// or https://"),
    ],
)
def test_bad_options_are_configuration_errors(tmp_path, args, message):
    result = run_cli("download", "--dest", str(tmp_path), *args)
    assert result.exit_code == 78, result.output
    assert message in result.stderr


def test_content_range_headers():
    assert _content_range("bytes 1000-1999/2000") == (1000, 1999, 2000)
    assert _content_range("bytes 0-9/*") == (0, 9, None)
    assert _content_range("bytes */2000") == (None, None, 2000)
    assert _content_range("") == (None, None, None)
