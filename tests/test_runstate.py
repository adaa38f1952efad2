"""Run state: the phase plan, atomic saves and what a resumed run still has to do."""

import json

import pytest

from coevolve.runstate import (
    MANIFEST,
    Phase,
    RunDirError,
    RunState,
    check_state_paths,
    checkpoint_problems,
    load_state,
    run_phases,
    save_state,
    stale_checkpoints,
)


def test_plan_starts_with_base_eval_then_four_phases_per_iteration():
    keys = [p.key for p in run_phases(2)]
    assert keys == [
        "0/eval_base",
        "1/challenger", "1/dataset", "1/solver", "1/eval",
        "2/challenger", "2/dataset", "2/solver", "2/eval",
    ]


def test_state_round_trip_and_pending(tmp_path):
    state = RunState(challenger_path="a", solver_path="b")
    state.completed += ["0/eval_base", "1/challenger"]
    state.global_step = 7
    state.bandits["solver"] = {"q": {"x": 0.5}}
    save_state(state, tmp_path)
    loaded = load_state(tmp_path)
    assert loaded == state
    assert [p.key for p in loaded.pending(run_phases(1))] == ["1/dataset", "1/solver", "1/eval"]
    assert not list(tmp_path.glob(".state.json.tmp-*"))  # no temporary left behind


def test_missing_state_is_none(tmp_path):
    assert load_state(tmp_path) is None


GOOD = {"challenger_path": "base", "solver_path": "base"}


@pytest.mark.parametrize(
    "content, says",
    [
        (b"{not json", "line 1 column 2"),  # truncated or corrupted file
        (json.dumps({"unexpected": 1}).encode(), "not a coevolve run state"),  # another program's JSON
        (b"[1, 2]", "a JSON object"),  # JSON, not an object
        (b'{"challenger_path": "\xff\xfe"}', "not UTF-8"),  # bad bytes
        (b"[" * 100_000 + b"]" * 100_000, "state.json"),  # nested too deeply for the parser
        (json.dumps({**GOOD, "completed": "1/challenger"}).encode(), "key completed"),  # a string, not a list
        (json.dumps({**GOOD, "completed": ["garbage"]}).encode(), "key completed"),  # not <int>/<phase>
        (json.dumps({**GOOD, "completed": ["x/eval"]}).encode(), "'x/eval'"),  # the iteration is not a number
        (json.dumps({**GOOD, "completed": ["1/lunch"]}).encode(), "not a phase key"),  # no such phase
        (json.dumps({**GOOD, "global_step": "7"}).encode(), "key global_step"),  # a string, not an int
        (json.dumps({**GOOD, "verl_checkpoints": {"solver": 3}}).encode(), "key verl_checkpoints"),  # not a path
    ],
)
def test_bad_state_file_names_the_file(tmp_path, content, says):
    (tmp_path / "state.json").write_bytes(content)
    with pytest.raises(RunDirError, match="state.json") as caught:
        load_state(tmp_path)
    assert says in str(caught.value)


@pytest.mark.parametrize(
    "field, value",
    [
        ("verl_checkpoints", {"solver": "/etc"}),  # a checkpoint outside the run
        ("verl_checkpoints", {"solver": "{run}/../elsewhere"}),  # out through '..'
        ("datasets", {"1": "/etc/passwd"}),  # a dataset outside the run
        ("solver_path", "/etc"),  # weights neither the run's nor the base model
    ],
)
def test_paths_outside_the_run_dir_are_refused(tmp_path, field, value):
    run = tmp_path / "run"
    run.mkdir()
    value = {k: v.format(run=run) for k, v in value.items()} if isinstance(value, dict) else value
    state = RunState(**{"challenger_path": "base", "solver_path": "base", field: value})
    with pytest.raises(RunDirError, match="outside the run directory"):
        check_state_paths(state, run, base_model="base")


def test_paths_inside_the_run_dir_and_the_base_model_pass(tmp_path):
    state = RunState(challenger_path="/models/base", solver_path=str(tmp_path / "checkpoints/iter_001/solver"),
                     verl_checkpoints={"solver": str(tmp_path / "verl/solver/iter_001")})
    check_state_paths(state, tmp_path, base_model="/models/base")


@pytest.mark.parametrize(
    "manifest, says",
    [
        (None, "no coevolve-manifest.json"),  # a folder coevolve did not write
        (b'{"model.pt": 1', "not valid JSON"),  # truncated manifest
        (b'{"../../../etc/passwd": 1}', "outside the checkpoint folder"),  # a name that climbs out
        (b'{"/etc/passwd": 1}', "outside the checkpoint folder"),  # an absolute name
        (b'{"model.pt": "big"}', "not a byte count"),  # a size that is no size
        (b'["model.pt"]', "not a checkpoint manifest"),  # another shape
    ],
)
def test_a_bad_or_missing_manifest_is_a_problem(tmp_path, manifest, says):
    folder = tmp_path / "iter_001"
    folder.mkdir()
    (folder / "model.pt").write_bytes(b"x")
    if manifest is not None:
        (folder / MANIFEST).write_bytes(manifest)
    problems = checkpoint_problems(folder)
    assert len(problems) == 1 and says in problems[0], problems


def test_stale_checkpoints_never_follow_a_link(tmp_path):
    outside = tmp_path / "precious"
    outside.mkdir()
    (tmp_path / "run" / "verl" / "solver").mkdir(parents=True)
    (tmp_path / "run" / "verl" / "solver" / "iter_001").symlink_to(outside)
    assert stale_checkpoints(RunState("base", "base"), tmp_path / "run") == []


def test_phase_key():
    assert Phase(3, "solver").key == "3/solver"


def test_stale_checkpoints_are_all_but_each_roles_latest(tmp_path):
    from coevolve.runstate import stale_checkpoints

    for role in ("challenger", "solver"):
        for it in (1, 2):
            (tmp_path / "verl" / role / f"iter_{it:03d}").mkdir(parents=True)
    (tmp_path / "verl" / "solver" / ".iter_003.tmp").mkdir()  # an unfinished save is not ours to judge
    state = RunState(challenger_path="c", solver_path="s")
    state.verl_checkpoints = {"challenger": str(tmp_path / "verl/challenger/iter_002"),
                              "solver": str(tmp_path / "verl/solver/iter_001")}
    stale = [p.relative_to(tmp_path).as_posix() for p in stale_checkpoints(state, tmp_path)]
    assert stale == ["verl/challenger/iter_001", "verl/solver/iter_002"]


def test_the_state_commit_syncs_its_directory_before_returning(tmp_path, monkeypatch):
    """A power cut after the commit must not bring back a state naming a deleted checkpoint:
    the rename is synced (the directory's fsync) before save_state returns and the caller
    deletes stale checkpoints."""
    import os
    import stat

    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    save_state(RunState("base", "base"), tmp_path)
    assert synced == [False, True]  # the file's data, then the directory holding the rename
