"""The console: the ETA's arithmetic, the phase bar, and the quiet output that sends
everything else to the run's log (fds 1 and 2, child processes included)."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from coevolve.recipe.load import DEFAULT_RECIPE, load_recipe
from coevolve.run.console import Console, quiet_output
from coevolve.run.progress import (
    PRIOR_SECONDS_PER_UNIT,
    PRIOR_STARTUP_SECONDS,
    TRAINED_TOKEN_UNITS,
    Eta,
    clock,
    eta_for,
    phase_units,
)
from coevolve.runstate import Phase, run_phases

RECIPE = load_recipe(DEFAULT_RECIPE, [])


def test_phase_units_count_generated_tokens_and_weigh_trained_ones():
    r = load_recipe(DEFAULT_RECIPE, ["challenger.steps=1", "challenger.batch_size=2", "challenger.group_size=2",
                                     "challenger.micro_batch_size=4",
                                     "challenger.max_new_tokens=10", "vote.samples=3", "vote.max_new_tokens=5"])
    units = phase_units(r, heldout=7, heldout_votes=2)
    assert units["challenger"] == 4 * 10 * TRAINED_TOKEN_UNITS + 4 * 3 * 5
    assert units["eval_base"] == units["eval"] == 7 * r.eval.max_new_tokens + 2 * 3 * 5
    assert phase_units(load_recipe(DEFAULT_RECIPE, ["challenger.steps=0"]), 7, 2)["challenger"] == 0


def test_eta_before_anything_is_measured_is_the_prior():
    eta = Eta({"eval": 100.0, "eval_base": 100.0, "solver": 50.0}, [Phase(0, "eval_base"), Phase(1, "solver")])
    assert eta.remaining() == pytest.approx(PRIOR_STARTUP_SECONDS + 150 * PRIOR_SECONDS_PER_UNIT)


def test_eta_learns_the_machine_speed_then_each_phase_kind_rate():
    units = {"eval_base": 1000.0, "eval": 1000.0, "solver": 4000.0}
    phases = [Phase(0, "eval_base"), Phase(1, "solver"), Phase(1, "eval"), Phase(2, "solver")]
    eta = Eta(units, list(phases), prior_rate=0.01, prior_startup=100.0)
    eta.finish_startup(200.0)  # twice as slow as the prior
    assert eta.speed() == 2.0
    assert eta.remaining() == pytest.approx(2 * 0.01 * 10000)
    eta.finish(phases[0], 30.0)  # eval measured: 0.03 s per unit from now on
    assert eta.phase_seconds(phases[2]) == pytest.approx(30.0)
    assert eta.speed() == pytest.approx(230 / 110)
    assert eta.phase_seconds(phases[1]) == pytest.approx(4000 * 0.01 * 230 / 110)
    # the current phase: its expected time less the time it has had, never below its share left
    current = eta.phase_seconds(phases[1])
    rest = eta.phase_seconds(phases[2]) + eta.phase_seconds(phases[3])
    assert eta.remaining(phases[1], 0.5, 10.0) == pytest.approx(current - 10.0 + rest)
    assert eta.remaining(phases[1], 0.5, current) == pytest.approx(current / 2 + rest)


def test_eta_is_within_30_percent_by_the_middle_of_a_run_on_a_slower_machine():
    """The default recipe with phase times that are not proportional to the prior's units
    (the slow machine's times: 2x, with training slower still): from the middle of the run on,
    the estimate is within 30 % of the time really left."""
    heldout, votes = 280, 20
    phases = run_phases(RECIPE.iterations)
    eta = eta_for(RECIPE, phases, heldout, votes)
    units = phase_units(RECIPE, heldout, votes)
    per_unit = {"eval_base": 0.012, "challenger": 0.016, "dataset": 0.011, "solver": 0.014, "eval": 0.009}
    truth = {p: units[p.name] * per_unit[p.name] for p in phases}
    startup = 2.2 * PRIOR_STARTUP_SECONDS
    total = startup + sum(truth.values())
    eta.finish_startup(startup)
    spent = startup
    for phase in phases:
        if spent >= total / 2:
            left = total - spent
            assert abs(eta.remaining() - left) <= 0.3 * left, (phase, eta.remaining(), left)
        eta.finish(phase, truth[phase])
        spent += truth[phase]
    assert eta.remaining() == 0


def test_clock():
    assert (clock(None), clock(5), clock(65.4), clock(3725)) == ("?", "0m05s", "1m05s", "1h02m")


def test_console_lines_and_a_plain_bar_when_not_on_a_terminal():
    out = io.StringIO()
    console = Console(out)
    assert not console.live
    console.say("hello\nworld")
    with console.bar("iteration 1 solver", 2, "steps") as bar:
        bar.show({"reward": "0.50"}, 1)
        console.warn("labels are wrong")
        bar.show({"reward": "0.75", "run ETA": "3m00s"}, 1)
    assert out.getvalue().splitlines() == [
        "[coevolve] hello", "[coevolve] world",
        "[coevolve] iteration 1 solver 1/2 steps | reward 0.50",
        "[coevolve] WARNING labels are wrong",
        "[coevolve] iteration 1 solver 2/2 steps | reward 0.75, run ETA 3m00s",
    ]


def test_live_bar_is_tqdm_and_lines_go_above_it():
    out = io.StringIO()
    console = Console(out, live=True)
    with console.bar("iteration 1 challenger", 4, "steps") as bar:
        bar.show({"valid": "0.31"}, 2)
        console.say("a line")
    text = out.getvalue()
    assert "iteration 1 challenger" in text and "2/4 steps" in text and "valid 0.31" in text
    assert "\r" in text and "[coevolve] a line\n" in text


def test_quiet_output_sends_the_process_and_its_children_to_the_log(tmp_path, capfd):
    log = tmp_path / "logs" / "run.log"
    with quiet_output(log) as terminal:
        print("verl says hello")
        print("a warning", file=sys.stderr)
        os.write(1, b"raw fd write\n")
        subprocess.run([sys.executable, "-c", "import sys; print('child out'); print('child err', file=sys.stderr)"],
                       check=True)
        Console(terminal).say("progress")
    print("after")
    captured = capfd.readouterr()
    assert captured.out == "[coevolve] progress\nafter\n" and captured.err == ""
    text = log.read_text()
    for line in ("verl says hello", "a warning", "raw fd write", "child out", "child err"):
        assert line in text


def test_quiet_output_restores_the_terminal_when_the_run_raises(tmp_path, capfd):
    log = tmp_path / "run.log"
    with pytest.raises(RuntimeError):
        with quiet_output(log):
            print("inside")
            raise RuntimeError("boom")
    print("visible again")
    assert capfd.readouterr().out == "visible again\n"
    assert log.read_text() == "inside\n"


def test_verbose_changes_nothing(tmp_path, capfd):
    with quiet_output(tmp_path / "run.log", quiet=False) as terminal:
        print("shown")
        assert terminal is sys.stdout
    assert capfd.readouterr().out == "shown\n" and not (tmp_path / "run.log").exists()


def test_a_ray_worker_failure_is_one_line_and_other_errors_are_not_touched():
    from ray.exceptions import RayTaskError

    from coevolve.backend.ray_session import worker_failure

    err = RayTaskError("update_actor", "Traceback (most recent call last):\n  ...\nValueError: bad shape",
                       ValueError("bad shape (3, 4)"))
    assert worker_failure(err) == "a Ray worker failed in update_actor: ValueError: bad shape (3, 4)"
    assert worker_failure(ValueError("mine")) is None
