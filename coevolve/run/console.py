"""What the user sees while a run goes: coevolve's own lines and one live bar per phase.

By default everything else the process and its children print (verl, Ray and its workers,
transformers, warnings) goes to a log file: `quiet_output` points the process's stdout and
stderr (file descriptors 1 and 2, inherited by every process started after it) at the file,
and hands back a stream on the terminal for the console. `--verbose` leaves them alone.

On a terminal the bar is tqdm's, redrawn in place; elsewhere (a CI log, `> file`) each update
is one plain line, so a log stays readable.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from tqdm import tqdm

PREFIX = "[coevolve]"


class Console:
    """coevolve's progress on `stream` (default: stdout at the time of each write)."""

    def __init__(self, stream: IO[str] | None = None, live: bool | None = None) -> None:
        self._stream = stream
        self._live = live
        self._bar: PhaseBar | None = None

    @property
    def stream(self) -> IO[str]:
        return self._stream if self._stream is not None else sys.stdout

    @stream.setter
    def stream(self, stream: IO[str]) -> None:
        self._stream = stream

    @property
    def live(self) -> bool:
        """Redraw bars in place: on a terminal, unless told."""
        if self._live is not None:
            return self._live
        isatty = getattr(self.stream, "isatty", None)
        return bool(isatty and isatty())

    def say(self, text: str) -> None:
        """A line of its own (above a live bar)."""
        for line in text.splitlines() or [""]:
            line = f"{PREFIX} {line}" if line.strip() else line
            if self._bar is not None and self._bar.tqdm is not None:
                self._bar.tqdm.write(line, file=self.stream)
            else:
                print(line, file=self.stream, flush=True)

    def warn(self, text: str) -> None:
        self.say(f"WARNING {text}")

    @contextmanager
    def bar(self, title: str, total: int, unit: str) -> Iterator[PhaseBar]:
        """A bar for one phase; it stays on screen when the phase ends."""
        bar = PhaseBar(self, title, total, unit)
        self._bar = bar
        try:
            yield bar
        finally:
            self._bar = None
            bar.close()


class PhaseBar:
    """One phase's bar: `show` moves it on and sets the numbers printed after it."""

    def __init__(self, console: Console, title: str, total: int, unit: str) -> None:
        self.console = console
        self.title = title
        self.total = max(total, 1)
        self.unit = unit
        self.n = 0
        self.numbers: dict[str, str] = {}
        self.tqdm: tqdm | None = None
        if console.live:
            self.tqdm = tqdm(total=self.total, desc=title, unit=unit, file=console.stream,
                             dynamic_ncols=True, leave=True,
                             bar_format="{desc} {bar:20} {n_fmt}/{total_fmt} {unit} [{elapsed}<{remaining}]{postfix}")

    def show(self, numbers: Mapping[str, str], advance: int = 0) -> None:
        """Set the phase's key numbers (e.g. {'reward': '0.41', 'run ETA': '23m'}) and move
        `advance` units on."""
        for name, value in numbers.items():  # the latest numbers last (the run's ETA ends the line)
            self.numbers.pop(name, None)
            self.numbers[name] = value
        self.n = min(self.n + advance, self.total)
        if self.tqdm is not None:
            self.tqdm.set_postfix_str(self._postfix(), refresh=False)
            self.tqdm.update(advance)
            self.tqdm.refresh()
        else:
            print(f"{PREFIX} {self.title} {self.n}/{self.total} {self.unit}{self._postfix(' |')}",
                  file=self.console.stream, flush=True)

    def close(self) -> None:
        if self.tqdm is not None:
            self.tqdm.close()

    def _postfix(self, lead: str = "") -> str:
        text = ", ".join(f"{k} {v}" for k, v in self.numbers.items())
        return f"{lead} {text}" if text else ""


@contextmanager
def quiet_output(log_file: Path, quiet: bool = True) -> Iterator[IO[str]]:
    """Point this process's stdout and stderr (fds 1 and 2) at `log_file` (appended to) and
    yield a stream on the original stdout; restore both on the way out. `quiet=False`: change
    nothing and yield sys.stdout."""
    if not quiet:
        yield sys.stdout
        return
    log_file.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    terminal = os.fdopen(os.dup(saved_out), "w", buffering=1)
    log_fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    python_out, python_err = sys.stdout, sys.stderr
    log_stream = os.fdopen(os.dup(log_fd), "w", buffering=1)
    try:
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        # Python's own streams too, in case they are not fds 1 and 2 (pytest, notebooks)
        sys.stdout = sys.stderr = log_stream
        yield terminal
    finally:
        sys.stdout, sys.stderr = python_out, python_err
        log_stream.close()
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        for fd in (saved_out, saved_err, log_fd):
            os.close(fd)
        terminal.close()
