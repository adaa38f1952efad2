"""Kill what a driver's local Ray cluster left behind when the driver itself was killed.

Why it exists: `ray.shutdown()` stops the cluster a run started, and a stop signal reaches it
(coevolve/run/loop.py), but SIGKILL (the out-of-memory killer, `kill -9`, a scheduler's hard
stop) gives the driver no chance: Ray's raylet and GCS notice and exit, yet Ray's dashboard
agent and runtime-env agent stay behind (about 200 MB) until the next run. This watchdog runs
in its own session beside the driver, remembers the driver's descendants while it lives, and
kills those still running (the same processes: pid and start time) once it is gone.

    python -m coevolve.backend.reaper DRIVER_PID
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil

POLL_S = 1.0
GRACE_S = 3.0  # after the driver's death: time for Ray's own processes to exit by themselves


def start_reaper() -> subprocess.Popen:
    """The watchdog of this process, in its own session (a signal to the run's group spares it)."""
    return subprocess.Popen([sys.executable, "-m", "coevolve.backend.reaper", str(os.getpid())],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def watch(driver_pid: int) -> int:
    """Follow `driver_pid`'s descendants until it dies, then kill the survivors; how many."""
    try:
        driver = psutil.Process(driver_pid)
    except psutil.NoSuchProcess:
        return 0
    seen: dict[int, float] = {}  # pid -> start time: a reused pid is another process
    while True:
        try:  # the driver may vanish between any two calls: then it is gone
            if not driver.is_running() or driver.status() == psutil.STATUS_ZOMBIE:
                break
            for child in driver.children(recursive=True):
                if child.pid != os.getpid():  # this watchdog is the driver's child too
                    seen.setdefault(child.pid, child.create_time())
        except psutil.NoSuchProcess:
            break
        time.sleep(POLL_S)
    time.sleep(GRACE_S)
    return sum(_kill_if_same(pid, started) for pid, started in seen.items())


def _kill_if_same(pid: int, started: float) -> bool:
    try:
        process = psutil.Process(pid)
        if process.create_time() != started:
            return False
        process.send_signal(signal.SIGKILL)
        return True
    except psutil.NoSuchProcess:
        return False


if __name__ == "__main__":
    watch(int(sys.argv[1]))
