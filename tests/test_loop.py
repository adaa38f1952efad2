"""The co-evolution loop against the fake backend (tests/fake_backend.py): every phase, resume
after a crash at each phase boundary, the TensorBoard output, a worker's failure and SIGTERM,
in seconds. The verl end-to-end test (test_e2e.py) runs the same loop on the real backend."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from coevolve import cli
from coevolve.recipe.load import load_recipe
from coevolve.run.console import Console
from coevolve.run.loop import CoEvolution, best_on_dev, dev_scores
from coevolve.runstate import RunDirError, run_phases
from helpers.e2e import REQUIRED_TAGS, tensorboard_tags
from helpers.fake_backend import FakeBackend

REPO = Path(__file__).resolve().parents[1]


def recipe(run_dir: Path, *extra: str):
    return load_recipe(REPO / "recipes" / "base.yaml", [
        "model.path=unused", "model.source=none", "name=fake", "resources.device=cpu", "resources.rollout=hf",
        "domain.name=helpers.toy_domain:ToyDomain", f"run_dir={run_dir}", "iterations=2", "seed=3",
        "challenger.steps=2", "challenger.batch_size=2", "challenger.group_size=2",
        "solver.steps=2", "solver.batch_size=2", "solver.group_size=2",
        "vote.samples=3", "dataset.questions=12", "dataset.band_low=0.0", "dataset.band_high=1.0",
        "dataset.min_words=1", "dataset.max_rouge_l=1.0", "dataset.flip_check_questions=4",
        "eval.per_category=3", "eval.vote_per_category=2", *extra])


def run(run_dir: Path, backend: FakeBackend | None = None, *extra: str):
    return CoEvolution(recipe(run_dir, *extra), backend or FakeBackend(), Console(live=False)).run()


def outcome(run_dir: Path) -> dict:
    """Everything a run decides, times and memory (logs/memory.json) left out."""
    state = json.loads((run_dir / "state.json").read_text())
    files = sorted(p for p in run_dir.rglob("*") if p.is_file() and p.suffix in (".json", ".jsonl")
                   and "tensorboard" not in p.parts and p.name not in ("state.json", "memory.json"))
    return {"completed": state["completed"], "global_step": state["global_step"], "bandits": state["bandits"],
            "examples": state["examples"], "rng": state["rng"], "metrics": state["metrics"],
            "files": {str(p.relative_to(run_dir)): p.read_text() for p in files}}


def test_every_phase_runs_in_order_and_logs_what_the_verl_run_logs(tmp_path, capsys):
    backend = FakeBackend()
    state = run(tmp_path, backend)
    assert state.completed == [p.key for p in run_phases(2)]
    assert backend.calls[:2] == ["check_memory", "start"] and backend.calls[-3:] == ["challenger.shutdown", "solver.shutdown", "stop"]
    trains = [c for c in backend.calls if ".train(" in c]
    assert trains == ["challenger.train(2..3)", "solver.train(5..6)", "challenger.train(8..9)", "solver.train(11..12)"]
    for iteration in (1, 2):
        kept = (tmp_path / "data" / f"iter_{iteration:03d}" / "solver_dataset.jsonl").read_text().splitlines()
        assert kept and all(json.loads(row)["label_source"] == "majority_vote" for row in kept)
        for role in ("challenger", "solver"):
            config = json.loads((tmp_path / "checkpoints" / f"iter_{iteration:03d}" / role / "config.json").read_text())
            assert config["version"] == 2 * iteration  # two updates per phase
    events, others = tensorboard_tags(tmp_path)
    assert [t for t in REQUIRED_TAGS if t not in events] == []
    assert "custom_scalars__config__" in others and "dataset/agreement_hist" in others
    assert len(events["eval/accuracy"]) == 3 and len(events["challenger/reward_mean"]) == 4
    out = capsys.readouterr().out
    assert "iteration 2 solver 2/2 steps" in out and f"held-out greedy accuracy of {tmp_path.name}" in out
    assert (tmp_path / "report.md").is_file()

def crash_before(phase_key: str):
    class Crash(Exception):
        pass

    class CrashingRun(CoEvolution):
        def _run_phase(self, phase):
            if phase.key == phase_key:
                raise Crash(phase.key)
            super()._run_phase(phase)

    return CrashingRun, Crash


@pytest.mark.parametrize("crash_at", [p.key for p in run_phases(2)[1:]])
def test_a_crash_at_any_phase_boundary_resumes_to_the_same_run(tmp_path, crash_at):
    uninterrupted = tmp_path / "uninterrupted"
    run(uninterrupted)
    CrashingRun, Crash = crash_before(crash_at)
    resumed = tmp_path / "resumed"
    with pytest.raises(Crash):
        CrashingRun(recipe(resumed), FakeBackend(), Console(live=False)).run()
    before = json.loads((resumed / "state.json").read_text())["completed"]
    assert before[-1] == run_phases(2)[[p.key for p in run_phases(2)].index(crash_at) - 1].key
    backend = FakeBackend()
    run(resumed, backend)
    assert outcome(resumed) == outcome(uninterrupted)
    events, _ = tensorboard_tags(resumed)
    for tag in ("challenger/reward_mean", "solver/reward_mean", "eval/accuracy", "dataset/questions_kept"):
        assert len(events[tag]) == len(set(events[tag])), (tag, events[tag])  # no step logged twice
    restored = [c for c in backend.calls if ".restore(" in c]
    saved = {key.split("/")[1] for key in before} & {"challenger", "solver"}  # roles with a checkpoint
    assert sorted(c.split(".")[0] for c in restored) == sorted(saved)


def test_each_role_has_its_own_curriculum_and_it_survives_a_resume(tmp_path):
    CrashingRun, Crash = crash_before("1/dataset")
    with pytest.raises(Crash):
        CrashingRun(recipe(tmp_path), FakeBackend(), Console(live=False)).run()
    bandits = json.loads((tmp_path / "state.json").read_text())["bandits"]
    assert set(bandits) == {"challenger", "solver"}
    assert bandits["challenger"]["updates"] == 2  # the challenger's two steps moved its own bandit
    assert bandits["solver"]["updates"] == 0 and set(bandits["solver"]["q"].values()) == {0.0}  # not the solver's
    resumed = CoEvolution(recipe(tmp_path), FakeBackend(), Console(live=False))
    resumed._open_run_dir("fake-base-model")
    assert {role: b.state_dict() for role, b in resumed.bandits.items()} == bandits


def test_a_run_state_of_one_shared_curriculum_resumes_both_roles_from_it(tmp_path):
    run_ = CoEvolution(recipe(tmp_path), FakeBackend(), Console(live=False))
    shared = run_.bandits["solver"].state_dict() | {"q": {"short": 0.5, "long": -0.5}, "updates": 7}
    run_._load_bandits({"curriculum": shared})
    assert all(b.q == {"short": 0.5, "long": -0.5} and b.updates == 7 for b in run_.bandits.values())


def test_a_worker_failure_is_one_line_and_the_log_has_the_traceback(tmp_path, capfd):
    r = recipe(tmp_path)
    assert cli._train(r, verbose=False, backend=FakeBackend(fail_role="solver")) == 1
    out = capfd.readouterr().out
    assert "ERROR a fake worker failed: solver: worker died in step 5" in out
    assert "Traceback" not in out
    log = (tmp_path / "logs" / "run.log").read_text()
    assert "Traceback" in log and "FakeWorkerError" in log
    assert json.loads((tmp_path / "state.json").read_text())["completed"][-1] == "1/dataset"


def test_sigterm_stops_cleanly_and_says_how_to_resume(tmp_path, capfd):
    class PreemptedBackend(FakeBackend):
        def build_role(self, inputs):
            role = super().build_role(inputs)
            if inputs.role == "solver":
                train = role.train

                def preempted(*args, **kwargs):
                    os.kill(os.getpid(), signal.SIGTERM)
                    return train(*args, **kwargs)

                role.train = preempted
            return role

    backend = PreemptedBackend()
    previous = signal.getsignal(signal.SIGTERM)
    try:
        assert cli._train(recipe(tmp_path), verbose=False, backend=backend) == 128 + signal.SIGTERM
    finally:
        signal.signal(signal.SIGTERM, previous)
    out = capfd.readouterr().out
    assert "stopped by SIGTERM" in out and "Committed phases: 0/eval_base, 1/challenger, 1/dataset" in out
    assert backend.calls[-3:] == ["challenger.shutdown", "solver.shutdown", "stop"]
    assert run(tmp_path).completed == [p.key for p in run_phases(2)]  # the same command resumes



@pytest.mark.parametrize("damage", ["truncate", "delete", "empty"])
def test_a_missing_or_truncated_checkpoint_is_named_before_any_trainer_starts(tmp_path, damage):
    CrashingRun, Crash = crash_before("1/eval")
    with pytest.raises(Crash):
        CrashingRun(recipe(tmp_path), FakeBackend(), Console(live=False)).run()
    state = json.loads((tmp_path / "state.json").read_text())
    solver = Path(state["verl_checkpoints"]["solver"])
    target = solver / "fake_state.json"
    if damage == "truncate":
        target.write_text(target.read_text()[:5])
    elif damage == "delete":
        target.unlink()
    else:  # emptied, manifest and all: a folder coevolve cannot vouch for
        for path in solver.iterdir():
            path.unlink()
    backend = FakeBackend()
    with pytest.raises(RunDirError, match=str(solver)) as err:
        run(tmp_path, backend)
    assert {"truncate": "truncated", "delete": "missing", "empty": "no coevolve-manifest.json"}[damage] in str(err.value)
    assert backend.calls == []  # nothing started


def test_a_full_disk_while_committing_keeps_the_previous_state(tmp_path, monkeypatch):
    """Simulated: every write of the state's temporary file fails with ENOSPC, as a full disk
    would, from the commit of 1/solver on."""
    import builtins
    import errno

    from coevolve import runstate

    CrashingRun, Crash = crash_before("1/solver")
    with pytest.raises(Crash):
        CrashingRun(recipe(tmp_path), FakeBackend(), Console(live=False)).run()
    before = (tmp_path / "state.json").read_text()

    def full_disk_open(path, mode="r", *args, **kwargs):
        handle = builtins.open(path, mode, *args, **kwargs)
        if "w" in mode and Path(path).name.startswith(".state.json.tmp"):
            def write(text):
                raise OSError(errno.ENOSPC, "No space left on device")
            handle.write = write
        return handle

    monkeypatch.setattr(runstate, "open", full_disk_open, raising=False)
    with pytest.raises(RunDirError, match="could not commit phase 1/solver .*No space left on device.*intact"):
        run(tmp_path)
    assert (tmp_path / "state.json").read_text() == before
    assert not list(tmp_path.glob(".state.json.tmp*"))
    monkeypatch.undo()  # space freed: the same command resumes
    assert run(tmp_path).completed == [p.key for p in run_phases(2)]


def test_the_base_challenger_baseline_trains_the_solver_only(tmp_path, capsys):
    backend = FakeBackend()
    state = run(tmp_path, backend, "challenger.steps=0")
    assert state.completed == [p.key for p in run_phases(2)]
    assert [c for c in backend.calls if ".train(" in c] == ["solver.train(3..4)", "solver.train(7..8)"]
    assert "iteration 1 challenger: no training steps (challenger.steps = 0)" in capsys.readouterr().out


def test_ctrl_c_stops_cleanly_and_says_how_to_resume(tmp_path, capfd):
    class InterruptedBackend(FakeBackend):
        def build_role(self, inputs):
            role = super().build_role(inputs)
            if inputs.role == "challenger":
                def interrupted(*args, **kwargs):
                    raise KeyboardInterrupt  # what Ctrl-C raises in the driver

                role.train = interrupted
            return role

    backend = InterruptedBackend()
    assert cli._train(recipe(tmp_path), verbose=False, backend=backend) == 128 + signal.SIGINT
    out = capfd.readouterr().out
    assert "stopped by SIGINT" in out and "Committed phases: 0/eval_base" in out and "Traceback" not in out
    assert backend.calls[-3:] == ["challenger.shutdown", "solver.shutdown", "stop"]


@pytest.mark.parametrize(
    "content, says",
    [
        (b"name: x\n\xff\xfe\n", "not UTF-8"),  # bytes that are not text
        (b"name: [unclosed\n", "not a recipe"),  # YAML cut in the middle
    ],
)
def test_a_garbled_saved_recipe_is_named_and_nothing_starts(tmp_path, content, says):
    (tmp_path / "recipe.yaml").write_bytes(content)
    backend = FakeBackend()
    with pytest.raises(RunDirError, match=says):
        run(tmp_path, backend)
    assert backend.calls == [] and (tmp_path / "recipe.yaml").read_bytes() == content  # nothing overwritten


def test_the_run_logs_its_memory_per_phase(tmp_path):
    run(tmp_path, FakeBackend())
    memory = json.loads((tmp_path / "logs" / "memory.json").read_text())
    # every phase, the start-up and the whole run; the driver itself holds tens of MB at least
    assert set(memory) == {"startup", "run", *(p.key for p in run_phases(2))}
    assert all(w["peak_pss_bytes"] > 10 * 2**20 and w["peak_machine_used_bytes"] > 0 for w in memory.values())
    assert memory["run"]["peak_pss_bytes"] >= max(w["peak_pss_bytes"] for w in memory.values())
    assert any("python" in name or "pytest" in name for name in memory["run"]["peak_pss_bytes_per_process"])


@pytest.mark.parametrize(
    "scores, expected",
    [
        ({0: 0.40, 1: 0.55, 2: 0.50}, 1),  # iteration 2 got worse on dev: iteration 1 is kept
        ({0: 0.60, 1: 0.55, 2: 0.50}, 0),  # training only hurt: the base model is kept
        ({0: 0.40, 1: 0.55, 2: 0.55}, 2),  # a tie goes to the later iteration
    ],
)
def test_best_on_dev(scores, expected):
    assert best_on_dev(scores) == expected


def test_best_on_dev_needs_a_dev_score():
    with pytest.raises(ValueError, match="no evaluation scored the dev split"):
        best_on_dev({})


def test_the_final_solver_is_the_best_on_the_dev_split_and_the_console_says_which(tmp_path, capsys):
    state = run(tmp_path, None, "eval.keep_best_on_dev=true", "eval.dev_per_category=2")
    scores = dev_scores(state.metrics)
    assert sorted(scores) == [0, 1, 2]  # the base model and every iteration scored on dev
    assert state.kept_iteration == best_on_dev(scores)
    assert json.loads((tmp_path / "state.json").read_text())["kept_iteration"] == state.kept_iteration
    out = capsys.readouterr().out
    assert "final solver: " in out and "best on the dev split" in out
    eval_keys = [k for k in state.metrics if k.endswith("eval") or k.endswith("eval_base")]
    assert all("eval/accuracy" in state.metrics[k] for k in eval_keys)  # the test split is still reported


def test_a_role_samples_and_trains_only_once_the_other_role_has_released_its_samplers(tmp_path):
    backend = FakeBackend()
    run(tmp_path, backend)
    roles = backend.roles
    assert {name: r.beside_others for name, r in roles.items()} == {"challenger": 0, "solver": 0}
    # both roles were released (the solver before each challenger phase, the challenger before
    # the solver's votes and training), and the solver still holds its weights at the end
    assert roles["challenger"].releases >= 2 and roles["solver"].releases >= 2
