"""Benchmark R-Zero's repetition penalty on one iteration's worth of challenger questions.

Why this exists: R-Zero scores 8 000 questions per iteration, and the pairwise 1 - BLEU
matrix behind the penalty is the one O(n^2) step of the reward. This script builds a seeded,
varied batch (templated arithmetic word problems and math questions of 8-40 words, with a
share of near-duplicates, as a challenger that repeats itself would write) and times
`coevolve.selfplay.repetition` end to end and by phase.

    python tools/bench_repetition.py --n 8000 --seed 0
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from coevolve.selfplay.repetition import cluster_labels, penalties_from_labels, repetition_penalty
from coevolve.selfplay.similarity import bleu_distance_condensed

T = TypeVar("T")

NAMES = [
    "Ava",
    "Ben",
    "Chloe",
    "Diego",
    "Emma",
    "Farid",
    "Grace",
    "Hiro",
    "Ines",
    "Jamal",
    "Kira",
    "Liam",
]
ITEMS = [
    "apples",
    "marbles",
    "stickers",
    "books",
    "pencils",
    "cookies",
    "coins",
    "cards",
    "shells",
    "stamps",
]
PLACES = ["the market", "school", "the library", "a fair", "the park", "a bakery", "the zoo"]
OPENERS = ["", "Consider this.", "Here is a puzzle.", "Think carefully.", "A short problem:"]
CLOSERS = [
    "",
    "",
    "Show your reasoning.",
    "Round to the nearest whole number.",
    "Give the exact value.",
    "Express the answer in simplest form.",
    "Put the final answer in a box.",
]

TEMPLATES: list[Callable[[random.Random], str]] = [
    lambda r: (
        f"{r.choice(NAMES)} has {r.randint(2, 999)} {r.choice(ITEMS)}. {r.choice(NAMES)} gives "
        f"{r.choice(['them', 'her', 'him'])} {r.randint(2, 99)} more at {r.choice(PLACES)}, "
        f"then {r.randint(2, 9)} friends each take {r.randint(1, 20)}. "
        f"How many {r.choice(ITEMS)} are left?"
    ),
    lambda r: (
        f"A {r.choice(['train', 'car', 'cyclist', 'boat'])} travels {r.randint(10, 900)} km in "
        f"{r.randint(2, 12)} hours. At the same speed, how far does it go "
        f"in {r.randint(2, 30)} hours?"
    ),
    lambda r: (
        f"What is {r.randint(2, 999)} {r.choice(['plus', 'times', 'minus'])} {r.randint(2, 999)}?"
    ),
    lambda r: (
        f"{r.choice(NAMES)} saves {r.randint(2, 90)} dollars a week for {r.randint(3, 52)} "
        f"weeks and spends {r.randint(5, 60)} percent on {r.choice(ITEMS)} at {r.choice(PLACES)}. "
        f"{r.choice(NAMES)} saves twice as much but starts {r.randint(2, 9)} weeks later. "
        f"Who has more left, and by how much?"
    ),
    lambda r: (
        f"What is the remainder when {r.randint(10**3, 10**9)} is divided by {r.randint(3, 97)}?"
    ),
    lambda r: (
        f"Find the sum of all positive integers n less than {r.randint(20, 500)} such that n is "
        f"divisible by {r.randint(2, 13)} but not by {r.randint(2, 13)}."
    ),
    lambda r: (
        f"Solve for x: {r.randint(2, 50)}x + {r.randint(1, 99)} = {r.randint(100, 999)}. "
        f"Give the answer as a {r.choice(['fraction', 'decimal', 'mixed number'])}."
    ),
    lambda r: (
        f"In a class of {r.randint(20, 60)} students, {r.randint(10, 90)} percent like "
        f"{r.choice(['math', 'chess', 'music', 'art'])} and {r.randint(1, 15)} like both "
        f"{r.choice(['math', 'chess'])} and {r.choice(['music', 'art'])}. "
        f"How many like neither, if {r.randint(5, 30)} like {r.choice(['music', 'art'])}?"
    ),
    lambda r: (
        f"How many {r.randint(3, 6)}-digit numbers have digits that sum to {r.randint(5, 40)} and "
        f"end in {r.randint(0, 9)}?"
    ),
    lambda r: (
        f"The product of two consecutive {r.choice(['even', 'odd', 'positive'])} integers is "
        f"{r.randint(100, 9999)} more than their sum. What is the larger integer?"
    ),
]


def _near_duplicate(question: str, rng: random.Random) -> str:
    """Change one or two words of a question, as a challenger that repeats itself would."""
    words = question.split()
    for _ in range(rng.randint(1, 2)):
        words[rng.randrange(len(words))] = str(rng.randint(2, 999))
    return " ".join(words)


def make_questions(n: int, seed: int, near_duplicate_share: float = 0.15) -> list[str]:
    """n seeded questions of 8-40 words; about `near_duplicate_share` copy an earlier one."""
    rng = random.Random(seed)
    questions: list[str] = []
    while len(questions) < n:
        if questions and rng.random() < near_duplicate_share:
            questions.append(_near_duplicate(rng.choice(questions), rng))
            continue
        text = " ".join(
            f"{rng.choice(OPENERS)} {rng.choice(TEMPLATES)(rng)} {rng.choice(CLOSERS)}".split()
        )
        if 8 <= len(text.split()) <= 40:
            questions.append(text)
    return questions


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _timed(fn: Callable[..., T], *args: object) -> tuple[T, float, str]:
    """Run fn(*args); return its result, its wall time and a 'wall, CPU, peak RSS' cell."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return result, wall, f"{wall:7.2f} s wall {cpu:7.2f} s CPU   peak RSS {_peak_rss_mib():6.0f} MiB"


def run(n: int, seed: int) -> tuple[list[tuple[str, str]], float]:
    """Time each phase, then the public entry point end to end: the report's rows, and the
    end-to-end seconds."""
    questions = make_questions(n, seed)
    words = np.array([len(q.split()) for q in questions])
    rows = [
        (
            "questions",
            f"{n}, seed {seed}, {words.min()}-{words.max()} words, mean {words.mean():.1f}",
        )
    ]
    rows.append(("peak RSS at start", f"{_peak_rss_mib():6.0f} MiB"))
    condensed, _, cell = _timed(bleu_distance_condensed, questions)
    rows.append(("1 - BLEU, upper triangle", cell))
    labels, _, cell = _timed(cluster_labels, condensed, n)
    rows.append(("linkage + fcluster", cell))
    del condensed
    penalties, seconds, cell = _timed(repetition_penalty, questions)
    rows.append(("repetition_penalty, end to end", cell))
    if penalties != penalties_from_labels(labels):
        raise RuntimeError("end-to-end penalties differ from the phase-by-phase ones")
    sizes = np.bincount(labels)
    summary = f"{len(sizes)}, largest {sizes.max()}, singletons {(sizes == 1).sum()}"
    rows.append(("clusters", f"{summary}, mean penalty {np.mean(penalties):.4f}"))
    return rows, seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=8000, help="number of questions")
    parser.add_argument("--seed", type=int, default=0, help="seed of the question generator")
    parser.add_argument("--json", type=Path, help="also write the end-to-end seconds here")
    args = parser.parse_args()
    rows, seconds = run(args.n, args.seed)
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"questions": args.n, "seconds": seconds, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
