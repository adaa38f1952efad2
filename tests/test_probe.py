"""The probe's statistics, verdicts and recommendation on fixed answers (no model).

Answers are strings the arithmetic domain reads back unchanged ("4" -> "4"), so every count
below is known by hand.
"""

from __future__ import annotations

import pytest

from coevolve.domains.arithmetic import ArithmeticDomain
from coevolve.measure.evaluation import EvalInputError, heldout_questions
from coevolve.measure.probe import (
    ALL,
    LIKELY,
    NO_EVIDENCE,
    NOT_TRAINABLE,
    SELF_TRAINABLE,
    build_report,
    cell_stats,
    probe_markdown,
    probe_questions,
    proportion,
    recommend,
    verdict,
)
from coevolve.records import Question

DOMAIN = ArithmeticDomain()
BAND = (0.3, 0.8)


def q(i: int, category: str, answer: str) -> Question:
    return Question(f"q{i}", category, f"What is {answer} + 0?", answer, "oracle")


def test_cell_statistics_by_hand():
    questions = [q(1, "add", "4"), q(2, "add", "6")]
    greedy = ["4", "no number here"]
    sampled = [["4", "4", "4", "5"],  # majority 4 of 4 votes... 3/4 = 0.75: in band, right
               ["7", "7", "6", "nothing"]]  # majority 7, 2/4 = 0.5: in band, wrong
    probes = probe_questions(DOMAIN, questions, greedy, sampled)
    cell = cell_stats(DOMAIN, probes, category="add", temperature=0.5, band=BAND)
    assert (cell.greedy.k, cell.greedy.n) == (1, 2)
    assert (cell.greedy_extracted.k, cell.greedy_extracted.n) == (1, 2)
    assert (cell.sample_extracted.k, cell.sample_extracted.n) == (7, 8)
    assert (cell.sample_accuracy.k, cell.sample_accuracy.n) == (4, 8)
    assert (cell.majority_accuracy.k, cell.majority_accuracy.n) == (1, 2)
    assert cell.agreement_counts == (0, 0, 1, 1, 0)  # one majority of 2 votes, one of 3
    assert (cell.in_band.k, cell.in_band.n) == (2, 2)
    assert (cell.in_band_label_accuracy.k, cell.in_band_label_accuracy.n) == (1, 2)
    assert cell.verdict == NOT_TRAINABLE  # 0.5 is not "more often than not"


def test_questions_outside_the_band_do_not_count_for_the_label_accuracy():
    questions = [q(1, "add", "4"), q(2, "add", "6")]
    sampled = [["4", "4", "4", "4"],  # unanimous: above the band, not kept
               ["1", "2", "3", "9"]]  # 1/4 = 0.25: below the band, not kept
    cell = cell_stats(DOMAIN, probe_questions(DOMAIN, questions, ["4", "6"], sampled), category="add",
                      temperature=1.0, band=BAND)
    assert cell.in_band.k == 0 and cell.in_band_label_accuracy.n == 0
    assert cell.verdict == NO_EVIDENCE
    assert cell.majority_accuracy.k == 1 and cell.greedy.k == 2


@pytest.mark.parametrize(
    "k, n, expected",
    [
        (0, 0, NO_EVIDENCE),  # nothing in the band
        (9, 10, SELF_TRAINABLE),  # Wilson interval [0.60, 0.98] lies above 0.5
        (3, 5, LIKELY),  # 0.6 but the interval reaches well below 0.5
        (2, 4, NOT_TRAINABLE),  # exactly half: the solver learns its errors as often
        (1, 10, NOT_TRAINABLE),  # the majority is mostly wrong
    ],
)
def test_verdict_from_the_interval(k, n, expected):
    assert verdict(proportion(k, n)) == expected


def test_wilson_interval_matches_the_formula():
    interval = proportion(9, 10)
    assert interval.low == pytest.approx(0.5958, abs=1e-3)
    assert interval.high == pytest.approx(0.9821, abs=1e-3)
    assert proportion(0, 0).value is None


def test_report_has_an_all_row_per_temperature_and_recommends_the_better_temperature():
    questions = [q(i, cat, str(i)) for i, cat in enumerate(["mul"] * 4 + ["add"] * 4)]
    right_split = [[str(i), str(i), str(i), "x"] for i in range(8)]  # 3/4 right labels
    wrong_split = [["99", "99", str(i), str(i + 1)] for i in range(8)]  # 2/4 wrong labels
    cold = probe_questions(DOMAIN, questions, [str(i) for i in range(8)], right_split)
    hot = probe_questions(DOMAIN, questions, [str(i) for i in range(8)], wrong_split)
    report = build_report(DOMAIN, {0.3: cold, 1.0: hot}, BAND)
    cells = {(c.temperature, c.category): c for c in report.cells}
    assert set(cells) == {(t, c) for t in (0.3, 1.0) for c in ("mul", "add", ALL)}
    assert cells[(0.3, ALL)].in_band_label_accuracy.k == 8
    assert cells[(1.0, ALL)].in_band_label_accuracy.k == 0
    assert cells[(0.3, "mul")].verdict == SELF_TRAINABLE  # 4/4: Wilson low 0.51
    assert cells[(1.0, "mul")].verdict == NOT_TRAINABLE  # 0/4
    rec = report.recommendation
    assert rec.vote_temperature == 0.3 and rec.solver_temperature == 0.3
    assert rec.categories == ("mul", "add")
    text = probe_markdown(report)
    assert "vote.temperature=0.3" in text and "| 0.3 | mul | 4 |" in text


def test_no_recommendation_when_no_category_is_trainable():
    questions = [q(1, "add", "4")]
    probes = probe_questions(DOMAIN, questions, ["5"], [["5", "5", "4", "x"]])
    report = build_report(DOMAIN, {1.0: probes}, BAND)
    assert report.recommendation.vote_temperature is None
    assert "recommendation: none" in probe_markdown(report)


def test_recommend_prefers_more_net_right_labels():
    from coevolve.measure.probe import CellStats

    def cell(t: float, k: int, n: int) -> CellStats:
        iv = proportion(k, n)
        return CellStats("c", t, n, 4, iv, iv, iv, iv, iv, (0,), iv, iv, verdict(iv))

    # T=0.2: 6 of 7 right (net 5); T=0.5: 12 of 16 right (net 8): more right labels to train on
    assert recommend([cell(0.2, 6, 7), cell(0.5, 12, 16)]).vote_temperature == 0.5


def test_mismatched_inputs_are_refused():
    with pytest.raises(ValueError, match="one of each per question"):
        probe_questions(DOMAIN, [q(1, "add", "4")], ["4", "4"], [["4"]])
    with pytest.raises(ValueError, match="no true answer"):
        probe_questions(DOMAIN, [Question("x", "add", "What is 1 + 1?")], ["2"], [["2"]])


def test_dev_and_test_splits_are_disjoint_and_test_is_unchanged_by_a_dev_split():
    domain = ArithmeticDomain(categories=["mul_small", "add_sub_small"])
    plain = heldout_questions(domain, [], per_category=5, seed=1234)
    test = heldout_questions(domain, [], per_category=5, seed=1234, dev_per_category=3, split="test")
    dev = heldout_questions(domain, [], per_category=5, seed=1234, dev_per_category=3, split="dev")
    assert [x.text for x in test] == [x.text for x in plain]
    assert len(dev) == 6 and not {x.text for x in dev} & {x.text for x in test}
    assert {x.category for x in dev} == {"mul_small", "add_sub_small"}
    with pytest.raises(EvalInputError, match="eval.dev_per_category"):
        heldout_questions(domain, [], per_category=5, seed=1234, split="dev")


class OracleSampler:
    """A fake model: greedy answers right; at T <= 0.5 4 of 6 votes right and 2 wrong, at
    higher T every vote wrong; it reads the question from the solver prompt."""

    def __init__(self, domain) -> None:
        self.domain = domain
        self.calls: list[tuple[int, float]] = []

    def generate(self, messages, params, seed=0):
        from coevolve.domains.arithmetic import true_answer

        self.calls.append((params.n, params.temperature))
        out = []
        for message in messages:
            truth = true_answer(message.split("?")[0] + "?")
            wrong = str(int(truth) + 1)
            if params.temperature == 0:
                out.append([f"= {truth}"])
            elif params.temperature <= 0.5:
                out.append([f"= {truth}"] * 4 + [f"= {wrong}"] * 2)
            else:
                out.append([f"= {wrong}"] * params.n)
        return out


def test_run_probe_with_a_fake_sampler_gives_known_numbers_and_files(tmp_path):
    from pathlib import Path

    from coevolve.backend.commands.probe import run_probe
    from coevolve.recipe.load import DEFAULT_RECIPE, load_recipe

    recipe = load_recipe(DEFAULT_RECIPE, [f"run_dir={tmp_path}", "eval.dev_per_category=3"])
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    sampler = OracleSampler(ArithmeticDomain())
    report, outputs = run_probe(recipe, Path(model), temperatures=(0.5, 1.0), samples=6, split="dev", generator=sampler)
    assert sampler.calls == [(1, 0.0), (6, 0.5), (6, 1.0)]
    cells = {(c.temperature, c.category): c for c in report.cells}
    n = 3 * len(recipe.eval_categories)
    cold, hot = cells[(0.5, ALL)], cells[(1.0, ALL)]
    assert cold.questions == n and cold.greedy.k == n and cold.majority_accuracy.k == n
    assert cold.sample_accuracy.k == 4 * n and cold.in_band_label_accuracy.k == n  # 4/6 in 0.6-1.0
    assert cold.verdict == SELF_TRAINABLE
    # unanimous wrong votes: agreement 1.0 is inside the band 0.6-1.0, so every question is a
    # confident wrong label, and the category is not self-trainable at T=1.0
    assert hot.majority_accuracy.k == 0 and hot.in_band.k == n and hot.in_band_label_accuracy.k == 0
    assert hot.in_band_label_accuracy.high < 0.5 and hot.verdict == NOT_TRAINABLE
    assert report.recommendation.vote_temperature == 0.5
    assert set(report.recommendation.categories) == set(recipe.eval_categories)
    for path in (outputs.json, outputs.markdown, outputs.plot):
        assert path.is_file() and path.parent == tmp_path / "probe"
