"""What a command tells the person or the cron log watching it: timestamped lines, JSON lines, live
progress bars on a terminal, or nothing but errors and the final summary (--quiet)."""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from collections.abc import Callable
from typing import TextIO

LOG_FORMATS = ("text", "json")
LOG_INTERVAL_SECONDS = 10.0  # off a terminal, a long loop logs its counts and rate this often
BAR_WIDTH = 30

Tick = Callable[[int], None]


class Reporter:
    """Progress and log lines on stderr. `log(message)` writes one line; `progress(what, total, unit)`
    returns a tick(done) callback for a long loop: a redrawn bar on a terminal, else a line with counts and
    rate every LOG_INTERVAL_SECONDS and one at the end."""

    def __init__(self, log_format: str = "text", quiet: bool = False, stream: TextIO | None = None):
        if log_format not in LOG_FORMATS:
            raise ValueError(f"log format must be one of {LOG_FORMATS}, not {log_format!r}")
        self.log_format = log_format
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() and log_format == "text"
        self._bar_shown = False

    def log(self, message: str, **fields) -> None:
        if self.quiet:
            return
        self._clear_bar()
        if self.log_format == "json":
            record = {"time": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"), "message": message}
            line = json.dumps({**record, **fields}, ensure_ascii=False)
        else:
            line = f"{time.strftime('%H:%M:%S')} {message}"
        self.stream.write(line + "\n")
        self.stream.flush()

    def progress(self, what: str, total: int, unit: str) -> Tick:
        started = time.perf_counter()
        last = started

        def tick(done: int) -> None:
            nonlocal last
            if self.quiet:
                return
            now = time.perf_counter()
            rate = done / max(now - started, 1e-9)
            if self.live:
                filled = int(BAR_WIDTH * done / max(total, 1))
                bar = "#" * filled + "-" * (BAR_WIDTH - filled)
                self.stream.write(f"\r{what} [{bar}] {done:,}/{total:,} {unit} ({rate:,.0f}/s)")
                self.stream.flush()
                self._bar_shown = done < total
                if done >= total:
                    self.stream.write("\n")
            elif done >= total or now - last >= LOG_INTERVAL_SECONDS:
                last = now
                self.log(f"{what}: {done:,}/{total:,} {unit} ({rate:,.0f} {unit}/s)", done=done, total=total)

        return tick

    def _clear_bar(self) -> None:
        if self._bar_shown:
            self.stream.write("\n")
            self._bar_shown = False


class _Messages(Reporter):
    """A plain message callback (or nothing) seen as a Reporter: lines go to the callback, no bars."""

    def __init__(self, callback: Callable[[str], None] | None):
        super().__init__(quiet=callback is None)
        self.callback = callback

    def log(self, message: str, **fields) -> None:
        if self.callback:
            self.callback(message)

    def progress(self, what: str, total: int, unit: str) -> Tick:
        return lambda _done: None


def as_reporter(progress: Reporter | Callable[[str], None] | None) -> Reporter:
    """Long-running functions take a Reporter (lines and bars) or a plain message callback; this gives both
    the same interface."""
    return progress if isinstance(progress, Reporter) else _Messages(progress)
