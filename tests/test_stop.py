"""Stopping a run: which signal an interruption came from, and (slow, real verl and Ray) a
SIGTERM in the middle of a challenger step, while the driver waits inside Ray for the rollout."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

import pytest

from coevolve.run import loop
from coevolve.run.loop import RunStopped, stop_signal


@pytest.mark.parametrize(
    "received, interrupt, expected",
    [
        ([], KeyboardInterrupt(), signal.SIGINT),  # Ctrl-C, no handler involved
        ([signal.SIGTERM], RunStopped(signal.SIGTERM), signal.SIGTERM),  # raised in Python code
        # raised by the handler inside Ray's wait: Ray re-raises a plain KeyboardInterrupt
        ([signal.SIGTERM], KeyboardInterrupt(), signal.SIGTERM),
        ([signal.SIGTERM, signal.SIGTERM], KeyboardInterrupt(), signal.SIGTERM),  # sent twice
    ],
)
def test_stop_signal(monkeypatch, received, interrupt, expected):
    monkeypatch.setattr(loop, "_stop_signals", list(received))
    assert stop_signal(interrupt) == expected


def test_the_handler_raises_what_ray_turns_into_an_orderly_interrupt(monkeypatch):
    monkeypatch.setattr(loop, "_stop_signals", [])
    with pytest.raises(KeyboardInterrupt):  # Ray handles only KeyboardInterrupt and SystemExit
        loop._stop(signal.SIGTERM, None)
    assert loop._stop_signals == [signal.SIGTERM]


def _left_in_session(session: int) -> list[str]:
    """Processes still in the run's session (it was started in its own): name and pid."""
    left = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.getsid(int(entry.name)) == session:
                    left.append(f"{(entry / 'comm').read_text().strip()} {entry.name}")
    return left


@pytest.mark.slow
def test_sigterm_during_a_challenger_step_stops_cleanly_and_the_run_resumes(tmp_path):
    from helpers.e2e import start, wait_for
    from helpers.tiny_model import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny")
    run_dir, log = tmp_path / "run", tmp_path / "first.log"
    first = start(model, run_dir, log)
    wait_for(lambda: "iteration 1 challenger 0/" in log.read_text(), first, 900, log)
    time.sleep(1.0)  # inside the step: the driver waits in ray.get for the rollout
    first.send_signal(signal.SIGTERM)
    try:
        first.wait(timeout=180)
        time.sleep(2.0)
        left = _left_in_session(first.pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(first.pid, signal.SIGKILL)
    text = log.read_text()
    assert first.returncode == 128 + signal.SIGTERM, text[-4000:]
    assert "stopped by SIGTERM" in text and "Resume with the same command: coevolve train" in text
    assert "Traceback" not in text and "SystemError" not in text, text[-4000:]
    assert not left, f"still running after the stop: {left}"
    state = run_dir / "state.json"
    assert not state.is_file() or "1/challenger" not in json.loads(state.read_text())["completed"]

    second_log = tmp_path / "second.log"
    second = start(model, run_dir, second_log)
    wait_for(lambda: second.poll() is not None, second, 900, second_log)
    assert second.returncode == 0, second_log.read_text()[-4000:]


DRIVER = r"""
import sys, time
from coevolve.recipe.load import load_recipe
from coevolve.backend.ray_session import start_ray
start_ray(load_recipe(sys.argv[1], [f"run_dir={sys.argv[2]}"]))
print("ready", flush=True)
time.sleep(600)
"""


@pytest.mark.slow
def test_nothing_of_ray_outlives_a_driver_killed_with_sigkill(tmp_path):
    import subprocess
    import sys

    import psutil

    repo = Path(__file__).resolve().parents[1]
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(repo / "recipes/arithmetic-cpu.yaml"),
                               str(tmp_path / "run")], cwd=repo, stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=str(repo)))
    try:
        assert driver.stdout.readline().strip() == "ready"
        time.sleep(5.0)  # Ray's agents start after ray.init returns
        family = psutil.Process(driver.pid).children(recursive=True)
        names = {p.name() for p in family}
        assert any("DashboardAgent" in n or "RuntimeEnvAgent" in n for n in names), names
        driver.kill()  # SIGKILL: no handler, no shutdown
        driver.wait(timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(p.is_running() for p in family):
            time.sleep(0.5)
        left = [f"{p.name()} {p.pid}" for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    finally:
        with contextlib.suppress(ProcessLookupError):
            driver.kill()
    assert not left, f"outlived the driver: {left}"
