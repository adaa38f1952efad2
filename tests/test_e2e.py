"""End to end through real verl on the CPU: one iteration, one GRPO step per phase, a kill and a resume.

A tiny random model plays the toy domain (tests/helpers/toy_domain.py). The run is started in a
subprocess, stopped by SIGTERM (a scheduler's preemption) as soon as its challenger phase is
committed, rerun, and its solver's Ray worker is killed in the solver phase; the third run must
resume at the solver phase, train it, and leave
both roles' weights changed, a complete TensorBoard run with no phase logged twice, and
loadable Hugging Face checkpoints.
"""

import contextlib
import json
import os
import signal

import pytest

from helpers.e2e import REQUIRED_TAGS, start, tensorboard_tags, wait_for, weights

pytestmark = pytest.mark.slow


def test_coevolution_runs_resumes_and_trains_both_roles(tmp_path):
    from transformers import AutoModelForCausalLM

    from helpers.tiny_model import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny")
    run_dir = tmp_path / "run"
    state = run_dir / "state.json"

    first_log = tmp_path / "first.log"
    first = start(model, run_dir, first_log)
    wait_for(lambda: state.is_file() and "1/challenger" in state.read_text(), first, 900, first_log)
    # what a scheduler sends on preemption: the driver shuts Ray and the trainers down and says
    # what was committed and how to resume, with no traceback
    first.send_signal(signal.SIGTERM)
    try:
        first.wait(timeout=180)
    finally:
        with contextlib.suppress(ProcessLookupError):  # nothing left of the group: as it should be
            os.killpg(first.pid, signal.SIGKILL)
    stopped = first_log.read_text()
    assert first.returncode == 128 + signal.SIGTERM, stopped[-4000:]
    assert "stopped by SIGTERM" in stopped and "Resume with the same command: coevolve train" in stopped
    assert "Traceback" not in stopped and "Aborted" not in stopped, stopped[-4000:]
    assert "Size of train dataloader" not in stopped  # verl's output is in the run's log file
    assert "Size of train dataloader" in (run_dir / "logs" / "run.log").read_text()
    # The tiny model is fast: the dataset phase may have committed before the kill landed.
    committed = json.loads(state.read_text())["completed"]
    assert "1/solver" not in committed, f"killed too late to test a resume: {committed}"

    # A Ray worker (not the driver) dies in the middle of the solver's step: the run stops with
    # one clear message naming the log, and the same command resumes it with nothing lost.
    second_log = tmp_path / "second.log"
    second = start(model, run_dir, second_log)
    wait_for(lambda: "iteration 1 solver 0/" in second_log.read_text(), second, 900, second_log)
    solver_pid = json.loads((run_dir / "logs" / "placement_solver.json").read_text())["worker_pids"][0]
    os.kill(solver_pid, signal.SIGKILL)
    try:
        second.wait(timeout=300)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(second.pid, signal.SIGKILL)
    died = second_log.read_text()
    assert second.returncode == 1, died[-4000:]
    assert "ERROR a Ray worker" in died and f"the full traceback is in {run_dir / 'logs' / 'run.log'}" in died
    assert "Traceback" not in died, died[-4000:]
    after_kill = json.loads(state.read_text())["completed"]
    assert after_kill[-1] == "1/dataset", after_kill  # the solver phase was not committed
    dataset = (run_dir / "data" / "iter_001" / "solver_dataset.jsonl").read_text()

    third_log = tmp_path / "third.log"
    third = start(model, run_dir, third_log)
    wait_for(lambda: third.poll() is not None, third, 900, third_log)
    text = third_log.read_text()
    assert third.returncode == 0, text[-4000:]
    assert "resuming" in text and "after 1/dataset" in text
    assert (run_dir / "data" / "iter_001" / "solver_dataset.jsonl").read_text() == dataset  # nothing lost
    committed = after_kill
    assert "held-out greedy accuracy of run" in text and "report:" in text  # the report's summary
    assert (run_dir / "report.md").is_file() and (run_dir / "report.png").is_file()
    for key in committed:  # no finished phase is redone
        iteration, name = key.split("/")
        assert f"iteration {iteration} {name} 0/" not in text, key  # a phase's bar starts at 0

    base = weights(model)
    for role in ("challenger", "solver"):
        trained = run_dir / "checkpoints" / "iter_001" / role
        AutoModelForCausalLM.from_pretrained(trained)  # a plain HF model directory
        changed = weights(trained)
        assert any(not (changed[k] == base[k]).all() for k in base if k in changed), role

    # On the CPU each role's agent loop runs in the driver and requests go straight to its
    # server: no process of verl's agent-loop workers or load balancers in the run's tree
    memory = json.loads((run_dir / "logs" / "memory.json").read_text())
    names = " ".join(name for peaks in memory.values() for name in peaks["peak_pss_bytes_per_process"])
    assert "HFRolloutServer" in names and "WorkerDict" in names, names
    assert "AgentLoopWorker" not in names and "LoadBalancer" not in names, names

    events, others = tensorboard_tags(run_dir)
    missing = [t for t in REQUIRED_TAGS if t not in events]
    assert not missing, f"missing tags {missing}; have {sorted(events)}"
    assert "dataset/agreement_hist" in others, others
    from coevolve.run.dashboard import LAYOUT, unmatched_charts

    assert "custom_scalars__config__" in others  # the co-evolution dashboard
    assert unmatched_charts(LAYOUT, list(events)) == []  # no chart of it is empty
    assert not [t for t in events if t.split("/")[1:2] == ["actor"] and not t.startswith("verl/")]
    for text in ("challenger/samples", "solver/samples", "eval/samples", "dataset/kept_questions"):
        assert f"{text}/text_summary" in others, others
    for tag in ("challenger/reward_mean", "solver/reward_mean", "dataset/questions_generated", "eval/accuracy"):
        assert len(events[tag]) == len(set(events[tag])) == (2 if tag == "eval/accuracy" else 1), (tag, events[tag])
