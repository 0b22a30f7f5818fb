"""Fetching the real KuaiRec 2.0 archive, KuaiRec.zip, from its official sources.

The bytes go to `KuaiRec.zip.part` beside the final file; an interrupted download resumes there with an
HTTP Range request (from the same source while it keeps making progress, else from the next one, or on the
next run). Only when the part has the expected size and MD5 is it renamed to `KuaiRec.zip`, so a
`KuaiRec.zip` written by recgen is always the verified archive, read in place by `run-batch --data-dir`.
Standard library only (urllib).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import os
import re
import shlex
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from recgen import __version__
from recgen.errors import ConfigError, DataError, LockedError, MissingInputError, OutputError
from recgen.progress import Reporter, Tick, as_reporter

ZIP_NAME = "KuaiRec.zip"
PART_SUFFIX = ".part"
DEFAULT_DEST = Path("data")
OFFICIAL_SIZE = 431_964_858  # bytes of KuaiRec.zip in Zenodo record 18164998
OFFICIAL_MD5 = "261550d472c48eff4990fb13c0e5bcf7"
# Tried in this order; --url / RECGEN_DOWNLOAD_URL replace the list. The Google Drive id is unconfirmed (not
# checked against the authors' page); confirm=t asks Drive for the file itself rather than its "cannot scan
# large files for viruses" page, and a page served instead of the zip counts as that source failing.
OFFICIAL_URLS = (
    "https://zenodo.org/records/18164998/files/KuaiRec.zip?download=1",
    "https://nas.chongminggao.top:4430/datasets/KuaiRec.zip",
    "https://drive.google.com/uc?id=1qcYTl-2kkp7X4jvSYuCxS39DvuX2UlDE&export=download&confirm=t",
)
CHUNK_BYTES = 1 << 20
TIMEOUT_SECONDS = 60.0  # per connection and per read: a stalled server is left for the next source
ATTEMPTS_PER_SOURCE = 10  # resumes from one source in a row, as long as each attempt brought new bytes
TICK_SECONDS = 0.25  # progress callbacks at most this often (a terminal bar need not redraw per packet)
USER_AGENT = f"recgen/{__version__} (Python urllib)"

_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.IGNORECASE)
_MD5_HEX = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class Download:
    """A verified KuaiRec.zip: where it is, whether it was already there and, if not, where it came from."""

    path: Path
    size: int
    md5: str
    already_there: bool = False  # found verified; nothing was downloaded
    source: str | None = None  # the URL that completed the .part (None if the .part was already complete)

    def run_batch_command(self) -> str:
        """The command that runs the nightly job on this archive, ready to paste."""
        return f"recgen run-batch --data-dir {shlex.quote(str(self.path))}"


class _SourceFailed(Exception):
    """One attempt at one source failed; the message says how, `received` how many new bytes it brought."""

    def __init__(self, reason: str, received: int = 0):
        super().__init__(reason)
        self.received = received


class _WrongFile(_SourceFailed):
    """The source holds a file of another size: not the archive asked for, whatever else it does."""


def download_kuairec(
    dest: Path | str = DEFAULT_DEST,
    urls: Sequence[str] | None = None,
    size: int = OFFICIAL_SIZE,
    md5: str = OFFICIAL_MD5,
    progress: Reporter | None = None,
) -> Download:
    """Download KuaiRec.zip into `dest` (trying `urls` in order, default OFFICIAL_URLS) and verify it.

    Returns at once if `dest/KuaiRec.zip` is already there with the expected size and MD5.

    Raises DataError (exit 65) when a file is wrong: an existing KuaiRec.zip that does not verify (left
    untouched), a source offering a file of another size, or an MD5 mismatch (the .part is removed: resuming
    cannot repair it); MissingInputError (66) when no source delivered the whole file (what was received is
    kept in the .part and the next call resumes it); LockedError (75) when another download writes the same
    .part; OutputError (73) when `dest` cannot be written or lacks the space; ConfigError (78) for a bad
    URL, size or MD5.

    Example:
        >>> download_kuairec("data").run_batch_command()  # doctest: +SKIP
        'recgen run-batch --data-dir /home/me/data/KuaiRec.zip'
    """
    reporter = as_reporter(progress)
    sources = _check_urls(OFFICIAL_URLS if urls is None else urls)
    md5 = md5.strip().lower()
    if not _MD5_HEX.fullmatch(md5):
        raise ConfigError(f"MD5 must be 32 hexadecimal digits, not {md5!r}")
    if size < 1:
        raise ConfigError(f"size must be a positive number of bytes, not {size}")
    dest = Path(dest).expanduser().absolute()
    target = dest / ZIP_NAME
    part = dest / (ZIP_NAME + PART_SUFFIX)

    if target.exists():
        return _already_there(target, size, md5, reporter)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {dest}: {exc.strerror or exc}") from None

    with _locked_part(part) as out:
        if target.exists():  # another download finished between our check and our lock
            _remove_if_empty(part)
            return _already_there(target, size, md5, reporter)
        start = _length(out)
        if start > size:
            reporter.log(f"{part} has {start:,} bytes, more than the expected {size:,}: starting again")
            out.truncate(0)
            start = 0
        source = _fill(out, part, sources, size, reporter)
        _verify_part(part, size, md5, reporter)
        os.replace(part, target)
        _sync_folder(dest)
    reporter.log(f"verified and saved {target}")
    return Download(target, size, md5, source=source)


def _already_there(target: Path, size: int, md5: str, reporter: Reporter) -> Download:
    actual_size = target.stat().st_size
    if actual_size != size:
        raise DataError(
            f"{target} already exists but has {actual_size:,} bytes, expected {size:,}: "
            "move or delete it, then run again"
        )
    actual_md5 = _md5_of(target, reporter)
    if actual_md5 != md5:
        raise DataError(
            f"{target} already exists but its MD5 is {actual_md5}, expected {md5}: move or delete it, then run again"
        )
    reporter.log(f"{target} is already there and verified (size and MD5): nothing to download")
    return Download(target, size, md5, already_there=True)


def _check_urls(urls: Sequence[str]) -> list[str]:
    sources = [url.strip() for url in urls if url.strip()]
    if not sources:
        raise ConfigError("no download URL given")
    for url in sources:
        if not url.lower().startswith(("http://", "https://")):
            raise ConfigError(f"download URL must start with http:// or https://, not {url!r}")
    return sources


@contextlib.contextmanager
def _locked_part(part: Path) -> Iterator[BinaryIO]:
    """The .part opened for appending, under an exclusive kernel lock (two downloads would mix their bytes)."""
    try:
        handle = open(part, "ab")
    except OSError as exc:
        raise OutputError(f"cannot write {part}: {exc.strerror or exc}") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockedError(f"another recgen download is writing {part}") from None
        yield handle


def _fill(out: BinaryIO, part: Path, sources: list[str], size: int, reporter: Reporter) -> str | None:
    """Bring the .part to `size` bytes from the first source that can; return that source (None if the part
    was already complete)."""
    if _length(out) == size:
        return None
    needed = size - _length(out)
    free = shutil.disk_usage(part.parent).free
    if free < needed:
        raise OutputError(f"{part.parent} has {free:,} bytes free, {needed:,} needed for {ZIP_NAME}")
    failures: list[str] = []
    wrong_file = False
    for url in sources:
        try:
            _fetch(url, out, size, reporter)
            return url
        except _SourceFailed as exc:
            wrong_file = wrong_file or isinstance(exc, _WrongFile)
            failures.append(f"{url}: {exc}")
            reporter.log(f"{url} failed: {exc}")
    have = _length(out)
    if have:
        kept = f"; {have:,} of {size:,} bytes kept in {part}, run again to resume"
    else:
        kept = ""
        with contextlib.suppress(OSError):
            part.unlink()
    error = DataError if wrong_file else MissingInputError
    raise error(f"could not download {ZIP_NAME} (tried {'; '.join(failures)}){kept}")


def _fetch(url: str, out: BinaryIO, size: int, reporter: Reporter) -> None:
    """Complete the .part from `url`, resuming after an interruption as long as each attempt brings bytes."""
    for attempt in range(1, ATTEMPTS_PER_SOURCE + 1):
        try:
            _attempt(url, out, size, reporter)
            return
        except _WrongFile:
            raise
        except _SourceFailed as exc:
            if not exc.received or attempt == ATTEMPTS_PER_SOURCE:
                raise
            reporter.log(f"{url}: {exc}")


def _attempt(url: str, out: BinaryIO, size: int, reporter: Reporter) -> None:
    offset = _length(out)
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    if offset:
        reporter.log(f"resuming {ZIP_NAME} at byte {offset:,} of {size:,} from {url}")
    else:
        reporter.log(f"downloading {ZIP_NAME} ({size:,} bytes) from {url}")
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_SECONDS)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416:  # nothing after `offset`, and offset < size: the server's file is shorter
            total = _content_range((exc.headers or {}).get("Content-Range", ""))[2]
            has = f"{total:,} bytes" if total is not None else f"at most {offset:,} bytes"
            raise _WrongFile(f"HTTP 416: the server's file has {has}, expected {size:,}") from None
        raise _SourceFailed(f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise _SourceFailed(str(exc.reason)) from None
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise _SourceFailed(str(exc) or type(exc).__name__) from None
    with response:
        if response.headers.get_content_type() == "text/html":
            raise _SourceFailed("answered with a web page (text/html), not the zip")
        if response.status == 206:
            start, _end, total = _content_range(response.headers.get("Content-Range", ""))
            if total is not None and total != size:
                raise _WrongFile(f"offers a file of {total:,} bytes, expected {size:,}")
            if start is None:
                raise _SourceFailed("answered a resume request without a readable Content-Range")
            if start != offset:
                raise _SourceFailed(f"answered a request for bytes from {offset:,} with bytes from {start:,}")
        elif response.status == 200:
            length = response.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) != size:
                raise _WrongFile(f"offers a file of {int(length):,} bytes, expected {size:,}")
            if offset:
                reporter.log(f"{url} ignored the resume request (HTTP 200): starting again from byte 0")
                out.truncate(0)
                offset = 0
        else:
            raise _SourceFailed(f"unexpected HTTP {response.status}")
        _copy(response, out, offset, size, reporter)


def _copy(response: http.client.HTTPResponse, out: BinaryIO, offset: int, size: int, reporter: Reporter) -> None:
    """Append the body to the .part; raise _SourceFailed (with the bytes kept) if it ends early."""
    remaining = size - offset
    what = f"downloading {ZIP_NAME}" + (f" (from byte {offset:,})" if offset else "")
    tick = _throttled(reporter.progress(what, remaining, "bytes"))
    received = 0
    try:
        while chunk := response.read1(CHUNK_BYTES):
            if received + len(chunk) > remaining:
                out.truncate(offset)  # this source's bytes belong to some other file
                raise _WrongFile(f"sent more than the expected {size:,} bytes")
            _write(out, chunk)
            received += len(chunk)
            tick(received)
    except (OSError, http.client.HTTPException) as exc:
        raise _SourceFailed(f"connection lost at byte {offset + received:,} of {size:,} ({exc})", received) from None
    finally:
        _flush(out)
    if received < remaining:
        raise _SourceFailed(f"connection closed at byte {offset + received:,} of {size:,}", received)
    tick(received, final=True)


def _verify_part(part: Path, size: int, md5: str, reporter: Reporter) -> None:
    """Size, then MD5, then that run-batch finds the KuaiRec CSVs in it. A bad MD5 removes the .part."""
    from recgen.ingest.source import locate_data  # imported late: pandas and pyarrow only for this last check

    actual_size = part.stat().st_size
    if actual_size != size:  # not reached by _fill, kept as the guard before the rename
        raise DataError(f"{part} has {actual_size:,} bytes, expected {size:,} (kept: run again to resume)")
    actual_md5 = _md5_of(part, reporter)
    if actual_md5 != md5:
        part.unlink()
        raise DataError(
            f"{part} is corrupt: MD5 {actual_md5}, expected {md5} (removed; run again to download it afresh)"
        )
    try:
        locate_data(part)
    except MissingInputError as exc:
        part.unlink()
        raise DataError(f"{part} matches the MD5 asked for but is not a KuaiRec archive ({exc}); removed") from None


def _md5_of(path: Path, reporter: Reporter) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    total = path.stat().st_size
    tick = _throttled(reporter.progress(f"checking the MD5 of {path.name}", total, "bytes"))
    done = 0
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK_BYTES):
            digest.update(block)
            done += len(block)
            tick(done)
    tick(done, final=True)
    return digest.hexdigest()


def _throttled(tick: Tick):
    """A progress callback called at most every TICK_SECONDS, and always when `final`."""
    last = 0.0

    def call(done: int, final: bool = False) -> None:
        nonlocal last
        now = time.monotonic()
        if final or now - last >= TICK_SECONDS:
            last = now
            tick(done)

    return call


def _content_range(value: str) -> tuple[int | None, int | None, int | None]:
    """(first byte, last byte, total) of a Content-Range header; None where it says `*` or is unreadable."""
    if value.strip().lower().startswith("bytes */"):
        total = value.strip()[len("bytes */") :]
        return None, None, int(total) if total.isdigit() else None
    match = _CONTENT_RANGE.fullmatch(value.strip())
    if not match:
        return None, None, None
    first, last, total = match.groups()
    return int(first), int(last), None if total == "*" else int(total)


def _length(out: BinaryIO) -> int:
    _flush(out)
    return os.fstat(out.fileno()).st_size


def _write(out: BinaryIO, chunk: bytes) -> None:
    try:
        out.write(chunk)
    except OSError as exc:  # disk full, say: not the source's fault, so no fallback
        raise OutputError(f"cannot write {out.name}: {exc.strerror or exc}") from None


def _flush(out: BinaryIO) -> None:
    try:
        out.flush()
        os.fsync(out.fileno())
    except OSError as exc:
        raise OutputError(f"cannot write {out.name}: {exc.strerror or exc}") from None


def _remove_if_empty(part: Path) -> None:
    with contextlib.suppress(OSError):
        if part.stat().st_size == 0:
            part.unlink()


def _sync_folder(folder: Path) -> None:
    """Make the rename durable (a crash right after it must not bring the .part back)."""
    with contextlib.suppress(OSError):
        handle = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)
