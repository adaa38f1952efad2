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

from coevolve.measure.report import Gain, gains, load_report
from coevolve.recipe.load import load_recipe


def train(recipe: str, overrides: list[str]) -> None:
    command = [sys.executable, "-m", "coevolve.cli", "train", recipe, *overrides]
    print("[baselines] " + " ".join(command), flush=True)
    subprocess.run(command, check=True)


def table(rows: list[tuple[str, list[Gain]]]) -> str:
    lines = ["| comparison | category | questions | before | after | gain (points) | paired bootstrap 95 % |",
             "|---|---|---|---|---|---|---|"]
    for name, row_gains in rows:
        lines += [f"| {name} | {g.category} | {g.questions} | {g.base:.3f} | {g.final:.3f} | "
                  f"{100 * g.difference:+.1f} | [{100 * g.low:+.1f}, {100 * g.high:+.1f}] |" for g in row_gains]
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
    base, coevolved = full.evals[0], full.evals[-1]
    base_challenger = load_report(base_challenger_dir).evals[-1]
    rows = [("base challenger vs base model", list(gains(base, base_challenger))),
            ("co-evolution vs base model", list(gains(base, coevolved))),
            ("co-evolution vs base challenger", list(gains(base_challenger, coevolved)))]
    text = (f"# Baselines of {recipe.name} (greedy held-out accuracy, same questions)\n\n"
            f"runs: `{full_dir}` (co-evolution), `{base_challenger_dir}` (challenger.steps=0); "
            f"overrides: `{' '.join(args.overrides) or 'none'}`\n\n" + table(rows))
    out = full_dir.with_name(full_dir.name + "-baselines.md")
    out.write_text(text)
    (out.with_suffix(".json")).write_text(json.dumps(
        {name: [g.__dict__ for g in row_gains] for name, row_gains in rows}, indent=2))
    print(text + f"\n[baselines] written: {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
