"""Held-out accuracy: the solver's answers against true answers, per category.

Pure Python: the caller provides completions (greedy by default); the result is a small
table usable for TensorBoard and for the run directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from coevolve.domains.base import Domain
from coevolve.records import Question
from coevolve.vote import agrees, majority_vote


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
        if question.answer is None:
            raise ValueError(f"held-out question {question.id} has no true answer")
        answer = majority_vote([domain.extract_answer(t) for t in texts], domain.equivalent).answer
        graded.append(answer)
        total[question.category] = total.get(question.category, 0) + 1
        hit = agrees(answer, question.answer, domain.equivalent)
        correct[question.category] = correct.get(question.category, 0) + int(hit)
    return EvalResult(correct, total), graded
