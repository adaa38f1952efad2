"""The watchdog that kills what a SIGKILLed driver's Ray cluster left behind."""

from __future__ import annotations

import psutil
import pytest

from coevolve.backend import reaper


class _VanishingDriver:
    """A driver process that is gone by the time its status is read."""

    pid = 424242

    def is_running(self) -> bool:
        return True

    def status(self) -> str:
        raise psutil.NoSuchProcess(self.pid)

    def children(self, recursive: bool = False) -> list:
        raise AssertionError("not reached: the driver is gone")


def test_a_driver_that_vanishes_mid_check_counts_as_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reaper.psutil, "Process", lambda pid: _VanishingDriver())
    monkeypatch.setattr(reaper, "GRACE_S", 0.0)
    assert reaper.watch(_VanishingDriver.pid) == 0  # no NoSuchProcess escapes: the watchdog finishes
