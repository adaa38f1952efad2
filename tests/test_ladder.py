"""The baseline ladder: each arm's recipe runs on the fake backend and does what its name says;
pooled paired gains by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_loop import recipe

from coevolve.measure.ladder import (
    ARMS,
    BASE,
    ArchivedRun,
    compare_archived,
    ladder_table,
    pooled_gain,
    read_archived,
    read_archived_run,
    write_archived,
)
from coevolve.measure.report import EvalPoint, load_report
from coevolve.run.console import Console
from coevolve.run.loop import CoEvolution
from coevolve.runstate import RunDirError
from coevolve.stats import proportion
from helpers.fake_backend import FakeBackend
from helpers.tools import load_tool


def run_arm(tmp_path, arm: str):
    backend = FakeBackend()
    state = CoEvolution(recipe(tmp_path, *ARMS[arm]), backend, Console(live=False)).run()
    kept = [json.loads(line) for line in (tmp_path / "data" / "iter_001" / "solver_dataset.jsonl").read_text()
            .splitlines()]
    return state, backend, kept


def test_format_only_rewards_any_extracted_answer(tmp_path):
    state, backend, _ = run_arm(tmp_path, "format-only")
    solver = state.metrics["1/solver"]
    assert solver["solver/reward_mean"] == pytest.approx(solver["solver/answer_extracted_rate"])
    assert backend.roles["challenger"].version == 0  # the base challenger's questions


def test_base_challenger_is_never_trained(tmp_path):
    _, backend, _ = run_arm(tmp_path, "base-challenger")
    assert backend.roles["challenger"].version == 0 and backend.roles["solver"].version > 0


def test_co_evolution_trains_both(tmp_path):
    _, backend, _ = run_arm(tmp_path, "co-evolution")
    assert backend.roles["challenger"].version > 0 and backend.roles["solver"].version > 0


def test_generator_questions_come_from_the_domain_not_the_challenger(tmp_path):
    _, backend, kept = run_arm(tmp_path, "generator-questions")
    # the toy generator writes digits; the fake challenger writes words
    assert kept and all(q["text"].replace(" ", "").isdigit() for q in kept)
    assert all(q["label_source"] == "majority_vote" for q in kept)
    assert "challenger.sample(12x1)" not in backend.calls  # the 12 dataset questions were not written by it


def test_true_labels_are_the_oracles(tmp_path):
    _, _, kept = run_arm(tmp_path, "true-labels")
    assert kept and all(q["label_source"] == "oracle" for q in kept)
    assert all(q["answer"] == str(len(q["text"].split()) % 3) for q in kept)  # the toy domain's oracle


def test_uniform_curriculum_never_moves_a_bandit(tmp_path):
    state, _, _ = run_arm(tmp_path, "uniform-curriculum")
    for bandit in state.bandits.values():
        assert bandit["updates"] == 0 and len(set(bandit["q"].values())) == 1


def point(correct: dict[str, bool]) -> EvalPoint:
    k = sum(correct.values())
    return EvalPoint(1, proportion(k, len(correct)), {}, correct, {q: "c" for q in correct})


def test_pooled_gain_pairs_each_seed_on_its_shared_questions():
    base = [point({"a": False, "b": False, "c": True}), point({"a": False, "b": False, "c": True})]
    arm = [point({"a": True, "b": False, "c": True}), point({"a": True, "b": True, "c": True})]
    g = pooled_gain("co-evolution", BASE, {BASE: base, "co-evolution": arm})
    # pairs: seed 0 (+1, 0, 0), seed 1 (+1, +1, 0): mean 3/6
    assert g.pairs == 6 and g.seeds == 2 and g.difference == pytest.approx(0.5)
    assert g.low <= 0.5 <= g.high
    assert "| co-evolution vs base | 2 | 6 | +50.0 |" in ladder_table({BASE: base, "co-evolution": arm})


def test_pooled_gain_needs_the_same_seeds():
    with pytest.raises(ValueError, match="pair the same seeds"):
        pooled_gain("co-evolution", BASE, {BASE: [point({"a": True})], "co-evolution": []})


def test_an_archived_run_gives_back_the_evaluations_of_its_run_dir(tmp_path):
    run_dir = tmp_path / "run"
    run_arm(run_dir, "base-challenger")
    report = load_report(run_dir)
    evals = {p.name: json.loads(p.read_text()) for p in (run_dir / "eval").glob("*.json")}
    kept = report.kept_iteration
    run = ArchivedRun("base-challenger", 2, {"commit": "abc", "kept_iteration": kept},
                      evals["0_eval_base.json"], evals[f"{kept}_eval.json"])
    write_archived(tmp_path / "archive", run)
    again = read_archived(tmp_path / "archive")[("base-challenger", 2)]
    base, final = again.points()
    expected_final = next(e for e in report.evals if e.iteration == kept)
    assert base.correct == report.evals[0].correct and final.correct == expected_final.correct
    assert final.iteration == kept and again.source["commit"] == "abc"


@pytest.mark.parametrize("content, says", [
    ("{not json", "archived ladder run"),
    ('{"arm": "co-evolution", "seed": 0, "source": {}, "base": {}}', "KeyError"),
    ('{"arm": "base-challenger", "seed": 0, "source": {}, "base": {"correct": {}, "total": {}}, '
     '"final": {"correct": {}, "total": {}}}', "file name must say so"),
])
def test_a_bad_archive_file_is_named(tmp_path, content, says):
    (tmp_path / "co-evolution-seed0.json").write_text(content)
    with pytest.raises(RunDirError, match=says) as err:
        read_archived(tmp_path)
    assert "co-evolution-seed0.json" in str(err.value)


def test_baselines_runs_only_what_the_archive_lacks_and_archives_it(tmp_path, monkeypatch):
    baselines = load_tool("baselines")
    trained = []

    def fake_train(recipe_path, overrides):  # the fake backend in place of `coevolve train`
        settings = dict(o.split("=", 1) for o in overrides)
        trained.append((settings["run_dir"], settings["seed"]))
        arm_keys = [o for o in overrides if not o.startswith(("run_dir=", "seed="))]
        CoEvolution(recipe(Path(settings["run_dir"]), *arm_keys, f"seed={settings['seed']}"), FakeBackend(),
                    Console(live=False)).run()

    monkeypatch.setattr(baselines, "train", fake_train)
    monkeypatch.chdir(tmp_path)
    archive = tmp_path / "archive"
    argv = ["baselines.py", "recipes/arithmetic-cpu.yaml", "--seeds", "1", "--arms", "base-challenger",
            "--archive", str(archive), "run_dir=runs/toy"]
    for recipe_dir in ("recipes",):
        (tmp_path / recipe_dir).symlink_to(Path(__file__).resolve().parents[1] / recipe_dir)
    monkeypatch.setattr("sys.argv", argv)
    assert baselines.main() == 0
    assert [seed for _, seed in trained] == ["0"] and (archive / "base-challenger-seed0.json").is_file()
    assert (tmp_path / "runs" / "toy-base-challenger-seed0" / "checkpoints").is_dir()  # kept unless asked
    monkeypatch.setattr("sys.argv", argv[:3] + ["2"] + argv[4:] + ["--drop-checkpoints"])
    assert baselines.main() == 0
    seed1 = tmp_path / "runs" / "toy-base-challenger-seed1"
    assert not (seed1 / "checkpoints").exists() and (seed1 / "eval").is_dir()
    assert [seed for _, seed in trained] == ["0", "1"]  # seed 0 was read from the archive
    table = (tmp_path / "runs" / "toy-ladder.md").read_text()
    assert "| base-challenger | 2 |" in table and "| base-challenger vs base | 2 |" in table


def test_a_run_that_kept_the_base_model_archives_the_base_evaluation(tmp_path):
    run_dir = tmp_path / "run"
    run_arm(run_dir, "base-challenger")
    state = json.loads((run_dir / "state.json").read_text())
    state["kept_iteration"] = 0  # training only hurt on the dev split
    (run_dir / "state.json").write_text(json.dumps(state))
    run = load_tool("baselines").archived(run_dir, "base-challenger", 0, [])
    base, final = run.points()
    assert run.final == run.base and final.iteration == 0 and final.correct == base.correct


def _archived_file(folder: Path, arm: str, seed: int, final: list[bool]) -> Path:
    """An archived run whose final evaluation is right on `final` (question q0, q1, ...)."""
    def evaluation(right: list[bool]) -> dict:
        return {"correct": {"c": sum(right)}, "total": {"c": len(right)},
                "questions": [{"id": f"q{i}", "category": "c", "correct": r} for i, r in enumerate(right)]}

    run = ArchivedRun(arm, seed, {"kept_iteration": 1}, evaluation([False] * len(final)), evaluation(final))
    return write_archived(folder, run)


def test_two_sets_of_archived_runs_compare_paired_by_seed(tmp_path, capsys, monkeypatch):
    # design A right on 3 of 4 questions in both seeds, design B on 1 of 4: +50 points
    a = [_archived_file(tmp_path / "a", "co-evolution", seed, [True, True, True, False]) for seed in (0, 1)]
    b = [_archived_file(tmp_path / "b", "co-evolution", seed, [True, False, False, False]) for seed in (1, 0)]
    gain = compare_archived([read_archived_run(p) for p in a], [read_archived_run(p) for p in b])
    assert (gain.seeds, gain.pairs, gain.difference) == (2, 8, pytest.approx(0.5))
    monkeypatch.setattr("sys.argv", ["ladder_compare.py", *map(str, a), "--vs", *map(str, b)])
    assert load_tool("ladder_compare").main() == 0
    assert "+50.0 points" in capsys.readouterr().out


def test_archived_runs_of_other_seeds_do_not_compare(tmp_path, monkeypatch):
    a = [_archived_file(tmp_path / "a", "co-evolution", 0, [True])]
    b = [_archived_file(tmp_path / "b", "base-challenger", 1, [True])]
    with pytest.raises(ValueError, match=r"pair the same seeds: \[0\] against \[1\]"):
        compare_archived([read_archived_run(p) for p in a], [read_archived_run(p) for p in b])
    monkeypatch.setattr("sys.argv", ["ladder_compare.py", str(a[0]), "--vs", str(tmp_path / "gone.json")])
    with pytest.raises(SystemExit, match="no such archived run: .*gone.json"):
        load_tool("ladder_compare").main()


def test_checkpoints_are_dropped_only_once_archived(monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["baselines.py", "recipes/arithmetic-cpu.yaml", "--drop-checkpoints"])
    with pytest.raises(SystemExit):
        load_tool("baselines").main()
    assert "--drop-checkpoints needs --archive" in capsys.readouterr().err
