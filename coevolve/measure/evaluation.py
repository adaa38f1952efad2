"""Held-out accuracy: the solver's answers against true answers, per set and per category.

Pure Python: the caller provides completions. The in-loop evaluation (`score_answers`) grades
one greedy completion per question; `coevolve eval` (`CheckpointEval`) grades a checkpoint
greedy and by the majority of k samples, with the number of questions behind every cell. A
held-out set is the part of a question id before ':' (a held-out file's stem); generated
questions have no ':' and form one set named after the domain.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from coevolve.domains.base import Domain
from coevolve.domains.files import QuestionFileError
from coevolve.records import Question
from coevolve.selfplay.vote import agrees, majority_vote


@dataclass(frozen=True)
class EvalResult:
    """Accuracy overall and per category, with the number of questions behind each."""

    correct: dict[str, int] = field(default_factory=dict)  # category -> correct answers
    total: dict[str, int] = field(default_factory=dict)  # category -> questions

    @property
    def accuracy(self) -> float:
        n = sum(self.total.values())
        return sum(self.correct.values()) / n if n else 0.0

    def accuracy_of(self, category: str) -> float:
        return self.correct[category] / self.total[category]

    def metrics(self, prefix: str = "eval") -> dict[str, float]:
        out = {f"{prefix}/accuracy": self.accuracy}
        out.update({f"{prefix}/accuracy/{c}": self.accuracy_of(c) for c in sorted(self.total)})
        return out


def score_answers(domain: Domain, questions: Sequence[Question],
                  completions: Sequence[Sequence[str]]) -> tuple[EvalResult, list[str | None]]:
    """Grade each question by the majority answer of its completions (one: greedy).

    Returns the result and the graded answer of each question.
    """
    correct: dict[str, int] = {}
    total: dict[str, int] = {}
    graded: list[str | None] = []
    for question, texts in zip(questions, completions, strict=True):
        grade = grade_question(domain, question, texts)
        graded.append(grade.answer)
        total[question.category] = total.get(question.category, 0) + 1
        correct[question.category] = correct.get(question.category, 0) + int(grade.correct)
    return EvalResult(correct, total), graded


@dataclass(frozen=True)
class Grade:
    """One question graded from its completions: the majority answer and whether it is true."""

    answer: str | None
    correct: bool
    agreement: float  # share of the completions behind `answer` (0.0 when none has an answer)


def grade_question(domain: Domain, question: Question, completions: Sequence[str]) -> Grade:
    """The majority answer of `completions` (one: greedy) against the question's true answer."""
    if question.answer is None:
        raise ValueError(f"held-out question {question.id} has no true answer")
    vote = majority_vote([domain.extract_answer(t) for t in completions], domain.equivalent)
    return Grade(vote.answer, agrees(vote.answer, question.answer, domain.equivalent), vote.agreement)


# --- `coevolve eval`: one checkpoint, greedy and majority-of-k, per set and category ----------

ALL = "all"  # the set or category of a row that sums over every set or category


class EvalInputError(ValueError):
    """Input `coevolve eval` cannot use; the message names the path, key or value and the fix."""


def heldout_set(question: Question, domain_name: str) -> str:
    """The held-out set of a question: its id before ':' (a file's stem), else the domain."""
    head, sep, _ = question.id.partition(":")
    return head if sep and head else domain_name


@dataclass(frozen=True)
class TableRow:
    """Accuracy of one group of questions: a set, a category, both, or everything (`ALL`)."""

    set: str
    category: str
    questions: int
    greedy_correct: int
    majority_correct: int | None  # None when the evaluation is greedy only (k = 1)

    @property
    def greedy_accuracy(self) -> float:
        return self.greedy_correct / self.questions

    @property
    def majority_accuracy(self) -> float | None:
        return None if self.majority_correct is None else self.majority_correct / self.questions


@dataclass(frozen=True)
class GradedQuestion:
    """One held-out question graded greedy and (unless k = 1) by majority of k."""

    question: Question
    set: str
    greedy: Grade
    majority: Grade | None


@dataclass(frozen=True)
class CheckpointEval:
    """Everything `coevolve eval` reports about one checkpoint."""

    checkpoint: str
    k: int  # samples per question of the majority vote; 1 = greedy only
    graded: tuple[GradedQuestion, ...]

    @property
    def rows(self) -> list[TableRow]:
        return table_rows(self.graded)

    def metrics(self, prefix: str = "eval_checkpoint") -> dict[str, float]:
        """TensorBoard scalars: accuracy and question count overall, per set, per category
        and per set and category (every group, even where the table leaves repeats out)."""
        out: dict[str, float] = {}
        for row in table_rows(self.graded, every_group=True):
            suffix = _row_tag(row)
            out[f"{prefix}/questions{suffix}"] = row.questions
            out[f"{prefix}/greedy_accuracy{suffix}"] = row.greedy_accuracy
            if row.majority_accuracy is not None:
                out[f"{prefix}/majority_of_{self.k}_accuracy{suffix}"] = row.majority_accuracy
        return out

    def header(self) -> tuple[str, ...]:
        majority = () if self.k == 1 else (f"majority-of-{self.k} accuracy",)
        return ("set", "category", "questions", "greedy accuracy", *majority)

    def table(self) -> list[tuple[str, ...]]:
        """The table's rows as text cells, in the order of `header()`."""
        cells = []
        for row in self.rows:
            majority = () if row.majority_correct is None else (
                _fraction(row.majority_correct, row.questions),)
            cells.append((row.set, row.category, str(row.questions),
                          _fraction(row.greedy_correct, row.questions), *majority))
        return cells

    def markdown(self) -> str:
        lines = ["| " + " | ".join(self.header()) + " |", "|" + "---|" * len(self.header())]
        lines += ["| " + " | ".join(cells) + " |" for cells in self.table()]
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict[str, Any]:
        """The table and every question's graded answers, for the run directory."""
        return {
            "checkpoint": self.checkpoint,
            "k": self.k,
            "rows": [{**asdict(row), "greedy_accuracy": row.greedy_accuracy,
                      "majority_accuracy": row.majority_accuracy} for row in self.rows],
            "questions": [_question_json(g) for g in self.graded],
        }


def grade_checkpoint(domain: Domain, questions: Sequence[Question], *, greedy: Sequence[str],
                     sampled: Sequence[Sequence[str]] | None, checkpoint: str,
                     domain_name: str) -> CheckpointEval:
    """Grade one greedy completion and (unless `sampled` is None) k samples per question."""
    if sampled is not None and len(sampled) != len(questions):
        raise ValueError(f"{len(questions)} questions but {len(sampled)} groups of samples")
    k = len(sampled[0]) if sampled else 1
    graded = []
    for index, (question, text) in enumerate(zip(questions, greedy, strict=True)):
        majority = None if sampled is None else grade_question(domain, question, sampled[index])
        graded.append(GradedQuestion(question, heldout_set(question, domain_name),
                                     grade_question(domain, question, [text]), majority))
    return CheckpointEval(checkpoint, k, tuple(graded))


def table_rows(graded: Sequence[GradedQuestion], every_group: bool = False) -> list[TableRow]:
    """Rows per (set, category); with several sets also per set and per category; then all.

    With a single set its total is the overall row and its categories are the per-category
    rows, so the table does not repeat them unless `every_group`.
    """
    sets = sorted({g.set for g in graded})
    categories = sorted({g.question.category for g in graded})
    keys = [(s, c) for s in sets for c in categories]
    if len(sets) > 1 or every_group:
        keys += [(s, ALL) for s in sets] + [(ALL, c) for c in categories]
    rows = [_row(s, c, [g for g in graded if s in (ALL, g.set) and c in (ALL, g.question.category)])
            for s, c in keys]
    return [row for row in rows if row.questions] + [_row(ALL, ALL, list(graded))]


def _row(set_name: str, category: str, graded: Sequence[GradedQuestion]) -> TableRow:
    majority = None
    if graded and graded[0].majority is not None:
        majority = sum(g.majority.correct for g in graded)
    return TableRow(set=set_name, category=category, questions=len(graded),
                    greedy_correct=sum(g.greedy.correct for g in graded), majority_correct=majority)


def _row_tag(row: TableRow) -> str:
    """'' for the overall row, else /set/<set>, /category/<category> or /set/<set>/<category>."""
    if row.set == ALL:
        return "" if row.category == ALL else f"/category/{row.category}"
    return f"/set/{row.set}" + ("" if row.category == ALL else f"/{row.category}")


def _fraction(correct: int, total: int) -> str:
    return f"{correct / total:.3f} ({correct}/{total})"


def _question_json(graded: GradedQuestion) -> dict[str, Any]:
    q = graded.question
    out = {"id": q.id, "set": graded.set, "category": q.category, "true_answer": q.answer,
           "greedy_answer": graded.greedy.answer, "greedy_correct": graded.greedy.correct}
    if graded.majority is not None:
        out.update(majority_answer=graded.majority.answer, majority_agreement=graded.majority.agreement,
                   majority_correct=graded.majority.correct)
    return out


# --- what `coevolve eval` evaluates, checked before any model is loaded ------------------------


SPLITS = ("test", "dev")


def heldout_questions(domain: Domain, categories: Sequence[str], *, per_category: int,
                      seed: int, dev_per_category: int = 0, split: str = "test") -> list[Question]:
    """The domain's held-out questions of `categories` (all of them when empty), of one split.

    With `dev_per_category` = 0 every held-out question is in the test split. Otherwise the
    domain is asked for `per_category + dev_per_category` questions per category, and each
    category's first `per_category` form the test split (the same questions as without a dev
    split, for domains that draw them in a fixed order), the rest the dev split: the two are
    disjoint, so settings can be chosen on dev and reported on test.

    Raises EvalInputError when the domain has none, or a question has no true answer.
    """
    if split not in SPLITS:
        raise EvalInputError(f"held-out split {split!r}: allowed: {', '.join(SPLITS)}")
    if split == "dev" and dev_per_category <= 0:
        raise EvalInputError("the dev split is empty: set eval.dev_per_category to the number of "
                             "development questions per category (disjoint from the test split)")
    try:
        questions = domain.heldout(per_category + dev_per_category, seed)
    except QuestionFileError as err:  # a held-out file: its own message names file and line
        raise EvalInputError(str(err)) from err
    except ValueError as err:  # e.g. fewer distinct questions than eval.per_category
        dev = f" + eval.dev_per_category = {dev_per_category}" if dev_per_category else ""
        raise EvalInputError(f"domain {domain.name or type(domain).__name__}: cannot provide "
                             f"held-out questions with eval.per_category = {per_category}{dev} "
                             f"({err})") from err
    wanted = set(categories or domain.categories())
    questions = [q for q in questions if q.category in wanted]
    available = len(questions)
    if dev_per_category > 0:
        test = first_per_category(questions, per_category)
        questions = test if split == "test" else [q for q in questions if q not in test]
    if not questions and split == "dev" and available:
        raise EvalInputError(
            f"domain {domain.name or type(domain).__name__}: the test split took all {available} held-out "
            f"questions of categories {', '.join(sorted(wanted))} (eval.per_category = {per_category} per "
            f"category), leaving none for the dev split; lower eval.per_category so that eval.per_category "
            f"+ eval.dev_per_category (= {dev_per_category}) questions per category are available, or "
            "add held-out questions")
    if not questions:
        raise EvalInputError(
            f"domain {domain.name or type(domain).__name__} has no held-out questions ({split} split) "
            f"in categories {', '.join(sorted(wanted))}; point domain.options.heldout_files at JSONL "
            "files (math, generic) or use a domain that generates them (arithmetic, reasoning_gym)")
    unanswered = [q.id for q in questions if q.answer is None]
    if unanswered:
        raise EvalInputError(f"held-out questions without a true answer: {', '.join(unanswered[:5])}")
    return questions


def recipe_heldout(recipe, domain: Domain, split: str = "test") -> tuple[list[Question], list[Question]]:
    """The recipe's held-out questions of `split` (its `eval.*` settings and evaluated
    categories) and, of those, the ones the solver also votes on in every evaluation (the
    first `eval.vote_per_category` of each category). The one place a run, a dry run, the
    probe and `coevolve eval` pick them. Raises EvalInputError as `heldout_questions`."""
    e = recipe.eval
    questions = heldout_questions(domain, recipe.eval_categories, per_category=e.per_category, seed=e.seed,
                                  dev_per_category=e.dev_per_category, split=split)
    return questions, first_per_category(questions, e.vote_per_category)


def first_per_category(questions: Sequence[Question], per_category: int) -> list[Question]:
    """The first `per_category` questions of each category, in their order."""
    taken: dict[str, int] = {}
    chosen = []
    for question in questions:
        if taken.get(question.category, 0) < per_category:
            taken[question.category] = taken.get(question.category, 0) + 1
            chosen.append(question)
    return chosen


def check_checkpoint(path: Path) -> None:
    """A Hugging Face model directory: a folder with config.json."""
    if not (path / "config.json").is_file():
        what = "no such directory" if not path.is_dir() else "no config.json in it"
        raise EvalInputError(
            f"checkpoint {path}: {what}; give a Hugging Face model directory, e.g. "
            "runs/<name>/checkpoints/iter_001/solver or the base model's directory")


def check_label(label: str) -> str:
    """A label names files and a folder that a rerun replaces: no separators, no leading dot."""
    if not re.fullmatch(r"\w[\w.+-]*", label):
        raise EvalInputError(f"label {label!r}: invalid; allowed: letters, digits and _ . + -, not "
                             "starting with '.' (it names files); pass --label NAME")
    return label


def checkpoint_label(path: Path, run_dir: Path) -> str:
    """A file name for a checkpoint: its path under `<run_dir>/checkpoints` with '_' for '/'
    (`iter_001_solver`); another run's checkpoint gets that run's name in front
    (`other_iter_003_solver`), so two runs' solvers never share a label; anything else its
    folder's name (the base model's `SmolLM2-135M-Instruct`)."""
    path, checkpoints = path.resolve(), (run_dir / "checkpoints").resolve()
    if path.is_relative_to(checkpoints) and path != checkpoints:
        return "_".join(path.relative_to(checkpoints).parts)
    parts = path.parts
    if "checkpoints" in parts[1:-1]:
        index = len(parts) - 1 - parts[::-1].index("checkpoints")
        return "_".join((parts[index - 1], *parts[index + 1:]))
    return path.name


def checkpoint_iteration(path: Path) -> int:
    """The iteration in a run's checkpoint path (`.../iter_003/solver` -> 3), else 0.

    It is the TensorBoard step of the checkpoint's scalars, so the base model sits at 0.
    """
    for part in reversed(path.parts):
        match = re.fullmatch(r"iter_(\d+)", part)
        if match:
            return int(match.group(1))
    return 0
