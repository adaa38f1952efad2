"""Time the answer-reading helpers on hostile model text: the slowest of a few worst cases each.

Why this exists: a solver writes up to several thousand tokens per answer, and a pattern that
backtracks over its whole input at every position turns one such answer into seconds of
driver time, times votes, times questions. Each helper here gets inputs built to hit the
backtracking a naive pattern would do (long runs of digits, spaces, periods, unclosed tags)
at 8,000 and 20,000 characters, and the slowest time of each is printed.

    python tools/bench_patterns.py [--sizes 8000 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import partial

from timing import best_seconds

from coevolve.domains.answers import answer_phrase, clean_answer, last_number, number_in
from coevolve.domains.arithmetic import ArithmeticDomain
from coevolve.domains.generic import GenericDomain, as_number, normalized
from coevolve.domains.math import MathDomain


def hostile_texts(size: int) -> dict[str, str]:
    """Inputs of about `size` characters that make backtracking patterns quadratic."""
    return {
        "digits then ',1'": "1" * size + ",1",
        "digit groups then a long group": "1" + ",234" * (size // 4) + "5",
        "spaces inside": "a" + " " * size + "a",
        "periods inside": "a" + "." * size + "a",
        "unclosed answer tags": "<answer>" * (size // 8),
        "answer is + spaces": "the answer is" + " " * size + "x",
        "digits then e": "1" * size + "e",
        "many 197-digit runs then ',1'": ("1" * 197 + ",1 ") * (size // 200),
    }


def helpers() -> dict[str, Callable[[str], object]]:
    tagged = GenericDomain(categories={"any": "Ask."}, answer_format="tag")
    return {
        "answers.last_number": last_number,
        "answers.clean_answer": clean_answer,
        "answers.answer_phrase": answer_phrase,
        "answers.number_in": number_in,
        "generic.normalized": normalized,
        "generic.as_number": as_number,
        "generic answer_format tag": tagged.extract_answer,
        "math extract_answer": MathDomain().extract_answer,
        "arithmetic extract_answer": ArithmeticDomain().extract_answer,
    }


def slowest_ms(helper: Callable[[str], object], texts: dict[str, str], repeat: int) -> tuple[float, str]:
    """The slowest input's best-of-`repeat` time in ms, and that input's name."""
    worst = (0.0, "")
    for name, text in texts.items():
        best = best_seconds(partial(helper, text), repeat, warmup=False)
        worst = max(worst, (best * 1e3, name))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[8000, 20000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"| helper | {' | '.join(f'{size:,} chars: ms (worst input)' for size in args.sizes)} |")
    print(f"|---|{'---|' * len(args.sizes)}")
    for name, helper in helpers().items():
        cells = [slowest_ms(helper, hostile_texts(size), args.repeat) for size in args.sizes]
        print(f"| {name} | {' | '.join(f'{ms:,.1f} ({which})' for ms, which in cells)} |", flush=True)


if __name__ == "__main__":
    main()
