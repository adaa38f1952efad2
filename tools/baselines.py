"""The three-way comparison R-Zero's readers ask for, on the same held-out questions.

1. the base model (the full run's `eval_base`);
2. the solver trained on questions from the *untrained* challenger (`challenger.steps=0`,
   R-Zero's "base challenger"), everything else equal;
3. the full co-evolution run.
Each trained solver is compared with the base model, and the full run with the base
challenger, by a paired bootstrap on the same questions. Both runs resume if killed; a run
already finished is read, not repeated. Writes `<runs>/<name>-baselines.md` and prints it.

    python tools/baselines.py recipes/arithmetic-cpu.yaml [key=value ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from coevolve.recipe import load_recipe
from coevolve.report import Gain, load_report, paired_gain


def train(recipe: str, overrides: list[str]) -> None:
    command = [sys.executable, "-m", "coevolve.cli", "train", recipe, *overrides]
    print("[baselines] " + " ".join(command), flush=True)
    subprocess.run(command, check=True)


def final_correct(run_dir: Path) -> tuple[dict[str, bool], dict[str, str]]:
    last = load_report(run_dir).evals[-1]
    return last.correct, last.categories_of


def comparison(base: dict[str, bool], other: dict[str, bool], categories: dict[str, str]) -> list[Gain]:
    shared = sorted(set(base) & set(other))
    gains = [paired_gain("all", [base[i] for i in shared], [other[i] for i in shared])]
    for category in sorted({categories[i] for i in shared}):
        ids = [i for i in shared if categories[i] == category]
        gains.append(paired_gain(category, [base[i] for i in ids], [other[i] for i in ids]))
    return gains


def table(rows: list[tuple[str, list[Gain]]]) -> str:
    lines = ["| comparison | category | questions | before | after | gain (points) | paired bootstrap 95 % |",
             "|---|---|---|---|---|---|---|"]
    for name, gains in rows:
        lines += [f"| {name} | {g.category} | {g.questions} | {g.base:.3f} | {g.final:.3f} | "
                  f"{100 * g.difference:+.1f} | [{100 * g.low:+.1f}, {100 * g.high:+.1f}] |" for g in gains]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    recipe = load_recipe(Path(args.recipe), args.overrides)
    full_dir = Path(recipe.run_dir)
    base_challenger_dir = full_dir.with_name(full_dir.name + "-base-challenger")
    train(args.recipe, [*args.overrides, f"run_dir={base_challenger_dir}", "challenger.steps=0"])
    train(args.recipe, args.overrides)

    full = load_report(full_dir)
    base = full.evals[0]
    base_challenger, _ = final_correct(base_challenger_dir)
    coevolved, categories = final_correct(full_dir)
    rows = [("base challenger vs base model", comparison(base.correct, base_challenger, categories)),
            ("co-evolution vs base model", comparison(base.correct, coevolved, categories)),
            ("co-evolution vs base challenger", comparison(base_challenger, coevolved, categories))]
    text = (f"# Baselines of {recipe.name} (greedy held-out accuracy, same questions)\n\n"
            f"runs: `{full_dir}` (co-evolution), `{base_challenger_dir}` (challenger.steps=0); "
            f"overrides: `{' '.join(args.overrides) or 'none'}`\n\n" + table(rows))
    out = full_dir.with_name(full_dir.name + "-baselines.md")
    out.write_text(text)
    (out.with_suffix(".json")).write_text(json.dumps(
        {name: [g.__dict__ for g in gains] for name, gains in rows}, indent=2))
    print(text + f"\n[baselines] written: {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
