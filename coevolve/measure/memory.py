"""The memory a run costs where users feel it: the whole process tree, and the machine.

A run is a driver plus Ray's processes (GCS, raylet, workers), both roles' FSDP workers and
rollout servers. Summed RSS counts every shared page (libraries, Ray's object store) once per
process and over-states the tree; PSS (proportional set size) splits each shared page among
the processes mapping it, so the tree's PSS is what the run adds to the machine. The kernel
sums it per process in /proc/<pid>/smaps_rollup, but walks each process's page tables to do so:
one sample of a run's ~20 processes costs ~0.3 s of CPU, so the run samples every 5 s (a vote
batch or an update lasts tens of seconds) and a benchmark reads the run's samples instead of
sampling the same tree a second time.

Pure Python over /proc (Linux); no psutil, no torch. `MemorySampler` samples in a thread and
keeps the peak of the tree's PSS (and what each process held at that moment), of the machine's
used memory (MemTotal - MemAvailable) and of each process, overall and per window
(`start_window`), so the driver can log each phase's peak.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")
GIB = 2**30


def _children_map(proc: Path = PROC) -> dict[int, list[int]]:
    """Parent pid -> child pids, from every /proc/<pid>/stat."""
    children: dict[int, list[int]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue  # ended between listing and reading
        # the command name (field 2) may hold spaces and parentheses: split after the last ')'
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def process_tree(pid: int, proc: Path = PROC) -> list[int]:
    """`pid` and all its descendants."""
    children = _children_map(proc)
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def pss_bytes(pid: int, proc: Path = PROC) -> int:
    """A process's PSS in bytes; 0 for a process that ended or cannot be read."""
    try:
        text = (proc / str(pid) / "smaps_rollup").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return 0
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{proc / str(pid) / 'smaps_rollup'} has no Pss line")


def process_name(pid: int, proc: Path = PROC) -> str:
    """What a process is: Ray names its workers `ray::<Actor>.<method>` in their command line."""
    try:
        argv = (proc / str(pid) / "cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return "?"
    words = [a.decode(errors="replace") for a in argv if a]
    if not words:
        return "?"
    if words[0].startswith("ray::"):  # "ray::Actor.method" while busy: the actor names it
        return words[0].split()[0].split(".")[0]
    names = [Path(w).name for w in words[:4] if not w.startswith("-")]
    return " ".join(names)[:60]


def machine_used_bytes(meminfo: Path = PROC / "meminfo") -> int:
    """MemTotal - MemAvailable: what `free` reports as taken, page cache excluded."""
    values = {}
    for line in meminfo.read_text().splitlines():
        key, _, rest = line.partition(":")
        values[key] = int(rest.split()[0]) * 1024
    return values["MemTotal"] - values["MemAvailable"]


def available_bytes(meminfo: Path = PROC / "meminfo") -> int:
    """MemAvailable: what a new run can take without pushing anything to disk."""
    for line in meminfo.read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{meminfo} has no MemAvailable line")


@dataclass
class Peaks:
    """Peaks over a window of samples (bytes)."""

    tree_pss: int = 0
    machine_used: int = 0
    per_process: dict[str, int] = field(default_factory=dict)  # "name [pid]" -> peak PSS
    at_tree_peak: dict[str, int] = field(default_factory=dict)  # each process's PSS then

    def add(self, sample: dict[str, int], used: int) -> None:
        if sum(sample.values()) > self.tree_pss:
            self.tree_pss, self.at_tree_peak = sum(sample.values()), dict(sample)
        self.machine_used = max(self.machine_used, used)
        by_pid = {key.rpartition(" [")[2]: key for key in self.per_process}
        for key, value in sample.items():
            # a Ray worker changes its name (ray::IDLE, then its actor's): one row per pid,
            # named as it was at its peak
            old = by_pid.get(key.rpartition(" [")[2])
            if old is None or value > self.per_process[old]:
                self.per_process.pop(old, None)
                self.per_process[key] = value


def sample_tree(pid: int, proc: Path = PROC) -> dict[str, int]:
    """PSS of every process of `pid`'s tree, keyed "name [pid]"."""
    return {f"{process_name(p, proc)} [{p}]": pss_bytes(p, proc) for p in process_tree(pid, proc)}


class MemorySampler:
    """Samples `pid`'s process tree every `interval` seconds in a daemon thread."""

    def __init__(self, pid: int | None = None, interval: float = 5.0) -> None:
        self.pid = os.getpid() if pid is None else pid
        self.interval = interval
        self.total = Peaks()
        self.window = Peaks()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="memory-sampler")

    def start(self) -> MemorySampler:
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.sample_now()
            self._stop.wait(self.interval)

    def sample_now(self) -> None:
        sample, used = sample_tree(self.pid), machine_used_bytes()
        with self._lock:
            self.total.add(sample, used)
            self.window.add(sample, used)

    def start_window(self) -> Peaks:
        """Close the current window (returning its peaks) and open a new one."""
        self.sample_now()  # a window never ends unsampled
        with self._lock:
            closed, self.window = self.window, Peaks()
        return closed

    def stop(self) -> Peaks:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        return self.total


def top_processes(peaks: Peaks, count: int = 12, *, at_tree_peak: bool = False) -> list[tuple[str, int]]:
    """The `count` processes with the largest peak PSS (or PSS at the tree's peak), largest first."""
    values = peaks.at_tree_peak if at_tree_peak else peaks.per_process
    return sorted(values.items(), key=lambda item: -item[1])[:count]


def format_processes(rows: Iterable[tuple[str, int]]) -> str:
    return "\n".join(f"    {value / GIB:6.2f} GiB  {name}" for name, value in rows)
