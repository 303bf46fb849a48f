"""Progress reporting for long stages: a rich bar when interactive, log lines in batch jobs.

A progress bar in a batch log is noise (one carriage-return line per refresh), while a silent
multi-hour job is worrying; so interactive terminals get a bar with rate and ETA, and everything
else gets one plain line every ``interval_s`` seconds with the same information.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any


def format_eta(seconds: float) -> str:
    """``hh:mm:ss`` for a remaining time; ``--:--:--`` when unknown (no rate yet)."""
    if seconds != seconds or seconds == float("inf"):  # NaN or unknown
        return "--:--:--"
    s = int(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


class ProgressReporter:
    """Counts work units and reports rate (units/s) and ETA.

    Args:
        total: Units expected in this run (already-finished work excluded).
        label: Short name shown in front of every report.
        unit: Unit name, e.g. ``images``.
        interval_s: Seconds between log lines in batch mode.
        interactive: Force bar (True) or log lines (False); default: ``stream.isatty()``.
        stream: Where reports go (stderr, so stdout stays clean for data).
    """

    def __init__(
        self,
        total: int,
        label: str,
        unit: str = "images",
        interval_s: float = 30.0,
        interactive: bool | None = None,
        stream: IO[str] | None = None,
    ):
        self.total, self.label, self.unit, self.interval_s = total, label, unit, interval_s
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.done = 0
        self._start = self._last = time.monotonic()
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> ProgressReporter:
        if self.interactive:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TaskProgressColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(file=self.stream),
            )
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=self.total, rate="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
        elif self.done:
            self._log(final=True)

    @property
    def rate(self) -> float:
        """Units per second since the start."""
        elapsed = time.monotonic() - self._start
        return self.done / elapsed if elapsed > 0 else 0.0

    def advance(self, n: int) -> None:
        """Record ``n`` more finished units."""
        self.done += n
        if self._bar is not None:
            self._bar.update(self._task, advance=n, rate=f"{self.rate:.1f} {self.unit}/s")
        elif time.monotonic() - self._last >= self.interval_s:
            self._log()

    def _log(self, final: bool = False) -> None:
        self._last = time.monotonic()
        rate = self.rate
        left = (self.total - self.done) / rate if rate > 0 else float("inf")
        pct = 100.0 * self.done / self.total if self.total else 100.0
        tail = "done" if final else f"ETA {format_eta(left)}"
        counts = f"{self.done}/{self.total} {self.unit} ({pct:.1f}%)"
        print(f"{self.label}: {counts}, {rate:.1f} {self.unit}/s, {tail}", file=self.stream, flush=True)
