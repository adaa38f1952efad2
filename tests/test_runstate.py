"""Run state: the phase plan, atomic saves and what a resumed run still has to do."""

import json

import pytest

from coevolve.runstate import Phase, RunState, load_state, run_phases, save_state


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


@pytest.mark.parametrize(
    "content",
    [
        "{not json",  # truncated or corrupted file
        json.dumps({"unexpected": 1}),  # another program's JSON
    ],
)
def test_bad_state_file_names_the_file(tmp_path, content):
    (tmp_path / "state.json").write_text(content)
    with pytest.raises(ValueError, match="state.json"):
        load_state(tmp_path)


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
