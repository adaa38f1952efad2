"""Benchmark the dataset filter (length, blacklist, ROUGE-L) on one dataset phase's questions.

Why this exists: R-Zero's recipes ask for 8,000 questions per dataset phase, and the ROUGE-L
filter compares each question with every accepted one. Scoring all pairs took about 350 us a
pair here, hours per phase; the index of `coevolve.selfplay.filters` scores only the pairs
that can pass. The questions are tools/bench_repetition.py's seeded batch (templated word
problems and math questions with a share of near-duplicates), with 20 seeds.

    python tools/bench_filter.py --n 8000 --seed 0 [--json out.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

from coevolve.selfplay.filters import TextFilter

TOOLS = Path(__file__).resolve().parent


def _make_questions():
    spec = importlib.util.spec_from_file_location("bench_repetition", TOOLS / "bench_repetition.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_repetition"] = module
    spec.loader.exec_module(module)
    return module.make_questions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8000, help="number of questions")
    parser.add_argument("--seed", type=int, default=0, help="seed of the question generator")
    parser.add_argument("--json", type=Path, help="also write the seconds here")
    args = parser.parse_args()
    questions = _make_questions()(args.n + 20, args.seed)
    seeds, questions = questions[:20], questions[20:]
    text_filter = TextFilter()
    start = time.perf_counter()
    accepted, rejected = text_filter.apply(questions, seeds)
    seconds = time.perf_counter() - start
    reasons = {r: sum(x.reason == r for x in rejected) for r in sorted({x.reason for x in rejected})}
    print(f"dataset filter, {len(questions)} questions: {seconds:.2f} s; accepted {len(accepted)}, "
          f"rejected {reasons}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"questions": len(questions), "seconds": seconds,
                                         "accepted": len(accepted), "rejected": reasons}))


if __name__ == "__main__":
    main()
