"""`coevolve report` on a recorded run directory, and the label-quality measures and warning.

The run directory is written by hand in the layout a run commits (state.json with phase
summaries, eval/<phase>.json with every question's correctness), so the numbers are known.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coevolve import cli
from coevolve.measure.label_quality import (
    WarnOncePerPhase,
    heldout_vote_quality,
    label_flip_rate,
    label_warning,
)
from coevolve.measure.report import (
    ReportError,
    load_report,
    paired_gain,
    report_markdown,
    run_table,
    summary,
    write_report,
)
from coevolve.records import Question, Vote
from coevolve.runstate import RunState, save_state
from helpers.fake_backend import FakeBackend


def eval_json(correct_by_category: dict[str, list[bool]]) -> dict:
    questions = [{"id": f"{c}/{i}", "category": c, "correct": ok}
                 for c, oks in correct_by_category.items() for i, ok in enumerate(oks)]
    correct = {c: sum(oks) for c, oks in correct_by_category.items()}
    total = {c: len(oks) for c, oks in correct_by_category.items()}
    return {"accuracy": sum(correct.values()) / sum(total.values()), "correct": correct, "total": total,
            "questions": questions}


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A finished 1-iteration run: base 2/20 + 5/20 right, final 12/20 + 5/20 right."""
    run = tmp_path / "demo"
    base = {"mul": [True] * 2 + [False] * 18, "add": [True] * 5 + [False] * 15}
    final = {"mul": [True] * 12 + [False] * 8, "add": [False] * 5 + [True] * 5 + [False] * 10}
    (run / "eval").mkdir(parents=True)
    (run / "eval" / "0_eval_base.json").write_text(json.dumps(eval_json(base)))
    (run / "eval" / "1_eval.json").write_text(json.dumps(eval_json(final)))
    state = RunState("c", "s", completed=["0/eval_base", "1/challenger", "1/dataset", "1/solver", "1/eval"],
                     phase_seconds={"0/eval_base": 10, "1/challenger": 100, "1/dataset": 50,
                                    "1/solver": 80, "1/eval": 10},
                     metrics={"1/challenger": {"challenger/reward_mean": 0.25},
                              "1/dataset": {"dataset/pseudo_label_accuracy": 0.8,
                                            "dataset/questions_kept": 40, "dataset/questions_generated": 256,
                                            "dataset/kept_informative": 12},
                              "1/eval": {"eval/in_band_label_accuracy": 0.7}})
    save_state(state, run)
    return run


def test_report_reads_the_committed_numbers(run_dir):
    report = load_report(run_dir)
    assert [e.iteration for e in report.evals] == [0, 1]
    assert (report.evals[0].overall.k, report.evals[0].overall.n) == (7, 40)
    assert (report.evals[1].per_category["mul"].k, report.evals[1].per_category["mul"].n) == (12, 20)
    overall, add, mul = report.gains
    assert overall.category == "all" and overall.difference == pytest.approx(10 / 40)
    assert overall.low > 0  # 10 more right, none lost: the interval excludes zero
    assert add.difference == 0 and add.low < 0 < add.high  # 5 lost, 5 gained: no change
    assert mul.difference == pytest.approx(0.5)
    (it,) = report.iterations
    assert it.pseudo_label_accuracy == 0.8 and it.questions_kept == 40 and it.challenger_reward == 0.25
    assert it.questions_informative == 12
    table = run_table(report).splitlines()
    assert "informative" in table[0].split()
    iteration_1 = table[2].split()
    assert iteration_1[iteration_1.index("40/256") + 1] == "12"  # the column after kept/written
    assert it.heldout_label_accuracy == 0.7 and it.label_flip_rate is None
    assert it.seconds == {"challenger": 100, "dataset": 50, "solver": 80, "eval": 10}


def test_report_markdown_summary_and_png(run_dir):
    report, md, png = write_report(run_dir)
    text = md.read_text()
    assert "| mul | 20 | 0.100 | 0.600 | +50.0 |" in text
    assert "| 1 | 0.80 | 0.70 | - | 256 | 40 | 0.25 |" in text
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    assert "gain over the base model: +25.0 points" in summary(report)
    assert report_markdown(report) == text


def test_paired_bootstrap_interval_is_paired():
    # Same answers shifted: every question gained -> the interval is the single value 1.0.
    same = paired_gain("x", [False] * 10, [True] * 10)
    assert same.low == same.high == 1.0
    # 3 gained, 3 lost of 30: the interval straddles zero.
    mixed = paired_gain("x", [True] * 3 + [False] * 27, [False] * 3 + [True] * 3 + [False] * 24)
    assert mixed.difference == 0 and mixed.low < 0 < mixed.high
    with pytest.raises(ValueError, match="x: base and final answers: 1 values before and 2 after"):
        paired_gain("x", [True], [True, False])  # different questions
    with pytest.raises(ValueError, match="at least one"):
        paired_gain("x", [], [])  # no questions


def test_report_cli_errors_and_success(tmp_path, run_dir, capsys):
    assert cli.main(["report", str(tmp_path / "nowhere")]) == 2
    assert "no state.json" in capsys.readouterr().err
    (run_dir / "eval" / "1_eval.json").unlink()
    assert cli.main(["report", str(run_dir)]) == 2
    assert "1_eval.json: missing" in capsys.readouterr().err


def test_report_cli_prints_the_summary(run_dir, capsys):
    assert cli.main(["report", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "iteration 1" in out and "report written" in out and (run_dir / "report.md").is_file()


def test_a_garbled_completed_entry_is_an_error_naming_the_file(tmp_path, capsys):
    (tmp_path / "state.json").write_text(json.dumps({"challenger_path": "c", "solver_path": "s",
                                                     "completed": ["garbage"]}))
    assert cli.main(["report", str(tmp_path)]) == 2  # no traceback
    err = capsys.readouterr().err
    assert "state.json" in err and "'garbage'" in err


@pytest.fixture
def user_domain_run(run_dir: Path) -> Path:
    """`run_dir` with a solver dataset, eval files without texts and a recipe naming user
    domain code (`module:Class`) that does not load."""
    dataset = run_dir / "datasets" / "1.jsonl"
    dataset.parent.mkdir()
    dataset.write_text(json.dumps({"text": "What is 1 + 1?"}) + "\n")
    state = json.loads((run_dir / "state.json").read_text())
    (run_dir / "state.json").write_text(json.dumps({**state, "datasets": {"1": str(dataset)}}))
    (run_dir / "recipe.yaml").write_text("domain: {name: 'no_such_module_xyz:Domain'}\n")
    return run_dir


def test_an_unloadable_trusted_recipe_is_a_report_error_naming_it(user_domain_run, capsys):
    assert cli.main(["report", str(user_domain_run), "--trust-recipe"]) == 2  # no traceback
    assert "recipe.yaml" in capsys.readouterr().err


def test_without_trust_the_skipped_overlap_says_so(user_domain_run, capsys):
    assert cli.main(["report", str(user_domain_run)]) == 0
    assert "overlap omitted: rerun with --trust-recipe" in capsys.readouterr().out


@pytest.mark.parametrize("content, says", [
    ('{"text": "ok"}\n{"text": 1' + "0" * 5000 + "}\n", ":2: a value JSON cannot hold"),  # an int too long to parse
    ('{"text": "ok"}\n{"text": "cut', ":2: not valid JSON"),  # truncated
    ('{"answer": "3"}\n', ":1: not a solver dataset row with a text"),  # no text
    (b"\xff\xfe", ":1: not UTF-8"),  # bad bytes
])
def test_a_bad_solver_dataset_is_a_report_error_naming_file_and_line(user_domain_run, content, says):
    dataset = user_domain_run / "datasets" / "1.jsonl"
    dataset.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ReportError, match=f"1.jsonl{says}"):
        load_report(user_domain_run)


def test_report_before_any_phase_is_an_error(tmp_path):
    with pytest.raises(ReportError, match="no state.json"):
        load_report(tmp_path)


# --- label quality ---------------------------------------------------------------------------

def same(a: str, b: str) -> bool:
    return a == b


def test_heldout_vote_quality_counts_in_band_labels():
    questions = [Question(str(i), "c", "t", answer) for i, answer in enumerate(["1", "2", "3"])]
    votes = [Vote("1", 3, 0.5, 6),  # in band, right
             Vote("9", 3, 0.5, 6),  # in band, wrong
             Vote("3", 6, 1.0, 6)]  # right but unanimous: outside the band
    quality = heldout_vote_quality(questions, votes, (0.3, 0.8), same)
    assert quality.majority_accuracy == pytest.approx(2 / 3)
    assert (quality.in_band, quality.in_band_correct, quality.in_band_label_accuracy) == (2, 1, 0.5)


def test_label_flip_rate():
    previous = [Question(str(i), "c", "t", label) for i, label in enumerate(["1", "2", "3", "4"])]
    now = [Vote("1", 4, 1, 4), Vote("5", 4, 1, 4), Vote(None, 0, 0, 4), Vote("4", 2, 0.5, 4)]
    assert label_flip_rate(previous, now, same) == 0.5  # "2" -> "5" and "3" -> nothing
    assert label_flip_rate([], [], same) is None


@pytest.mark.parametrize(
    "value, warns",
    [
        (None, False),  # not measured: nothing to say
        (0.49, True),  # mostly wrong labels
        (0.5, False),  # the floor itself is not below it
        (0.9, False),
    ],
)
def test_label_warning_below_half_names_the_probe_command(value, warns):
    message = label_warning("label accuracy", value, "runs/x/recipe.yaml")
    assert (message is not None) == warns
    if warns:
        assert "coevolve probe runs/x/recipe.yaml" in message and "0.49" in message


def test_warning_once_per_phase():
    once = WarnOncePerPhase()
    assert once.first("1/solver", "bad") == "bad"
    assert once.first("1/solver", "bad again") is None
    assert once.first("1/solver", None) is None
    assert once.first("1/eval", "bad") == "bad"


class RecordingTracker:
    def __init__(self) -> None:
        self.texts: list[tuple[str, list, int]] = []
        self.scalar_calls: list[tuple[dict, int]] = []

    def text(self, tag, rows, header, step) -> None:
        self.texts.append((tag, list(rows), step))

    def scalars(self, values, step) -> None:
        self.scalar_calls.append((dict(values), step))


def test_the_loop_warns_on_the_console_and_in_tensorboard_once_per_phase(tmp_path, capsys):
    from coevolve.recipe.load import load_recipe
    from coevolve.run.loop import CoEvolution

    repo = Path(__file__).resolve().parents[1]
    recipe = load_recipe(repo / "recipes" / "arithmetic-cpu.yaml", [f"run_dir={tmp_path}"])
    run = CoEvolution(recipe, FakeBackend())
    run.tracker = RecordingTracker()
    run._phase_key = "1/solver"
    run._warn_labels("the pseudo-label accuracy", 0.25, step=7)
    run._warn_labels("the pseudo-label accuracy", 0.1, step=8)  # same phase: silent
    run._warn_labels("the pseudo-label accuracy", 0.9, step=9)
    run._phase_key = "1/eval"
    run._warn_labels("the held-out estimate", 0.4, step=10, support="right on 2 of 5")
    out = capsys.readouterr().out
    assert out.count("WARNING") == 2
    assert "iteration 1/solver: the pseudo-label accuracy is 0.25, below" in out
    assert "the held-out estimate is 0.40 (right on 2 of 5), below" in out
    assert f"coevolve probe {tmp_path}/recipe.yaml" in out
    assert [(tag, step) for tag, _, step in run.tracker.texts] == [
        ("warnings/label_quality", 7), ("warnings/label_quality", 10)]
    run._log({"dataset/questions_kept": 3, "dataset/label_flip_rate": None}, step=11)
    assert run._phase_values == {"dataset/questions_kept": [3.0]}  # None is not averaged in


def test_the_gain_is_split_by_whether_the_solver_trained_on_the_test_question():
    from coevolve.measure.report import EvalPoint, overlap_gains
    from coevolve.stats import proportion

    ids = [f"q{i}" for i in range(6)]
    texts = {i: f"What is {n} + 1?" for n, i in enumerate(ids)}
    base = EvalPoint(0, proportion(0, 6), {}, {i: False for i in ids}, {i: "c" for i in ids}, texts)
    final = EvalPoint(1, proportion(4, 6), {}, {i: n < 4 for n, i in enumerate(ids)}, {i: "c" for i in ids}, texts)
    seen, unseen = overlap_gains(base, final, {"what is 0 +  1?", "What is 1 + 1?", "unrelated"})
    assert (seen.category, seen.questions, seen.difference) == ("trained on", 2, 1.0)
    assert (unseen.category, unseen.questions, unseen.difference) == ("never trained on", 4, 0.5)
    assert overlap_gains(base, final, set()) is None  # nothing overlaps: no split to show
    no_texts = EvalPoint(1, proportion(4, 6), {}, final.correct, final.categories_of)
    assert overlap_gains(base, no_texts, {"What is 1 + 1?"}) is None


def test_a_fake_run_reports_the_split(tmp_path):
    from test_loop import run

    from helpers.fake_backend import FakeBackend

    run(tmp_path, FakeBackend(), "eval.per_category=40")
    report = load_report(tmp_path)
    assert report.overlap is None  # the fake challenger writes words, the toy test questions are digits
    assert all("text" in q for q in json.loads((tmp_path / "eval" / "2_eval.json").read_text())["questions"])
