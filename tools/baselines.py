"""The baseline ladder (coevolve/measure/ladder.py): every arm, N seeds, pooled paired intervals.

Arms: base model, format-only, base challenger (challenger.steps=0), co-evolution, generator
questions, true labels, uniform curriculum; each run `--seeds` times (seed=0..N-1, the same
seeds in every arm, the same test questions). Each run resumes if killed; a finished run is
read, not repeated. The final solver of each run is the one it kept (on the dev split when
eval.keep_best_on_dev). Writes `<runs>/<name>-ladder.md` and prints it. Hours on 2 cores: by hand.

    python tools/baselines.py recipes/arithmetic-cpu.yaml --seeds 3 [--arms co-evolution,base-challenger] [key=value ...]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from coevolve.measure.ladder import ARMS, BASE, ladder_table
from coevolve.measure.report import load_report
from coevolve.recipe.load import load_recipe


def run_dir_of(recipe_run_dir: Path, arm: str, seed: int) -> Path:
    return recipe_run_dir.with_name(f"{recipe_run_dir.name}-{arm}-seed{seed}")


def arm_overrides(arm: str, seed: int, run_dir: Path, overrides: list[str]) -> list[str]:
    """The command-line overrides of one arm's run of one seed."""
    if arm not in ARMS:
        raise SystemExit(f"unknown arm {arm!r}; allowed: {', '.join(ARMS)}")
    return [*overrides, *ARMS[arm], f"seed={seed}", f"run_dir={run_dir}"]


def train(recipe: str, overrides: list[str]) -> None:
    command = [sys.executable, "-m", "coevolve.cli", "train", recipe, *overrides]
    print("[baselines] " + " ".join(command), flush=True)
    subprocess.run(command, check=True)


def final_eval(run_dir: Path):
    report = load_report(run_dir)
    return next((e for e in report.evals if e.iteration == report.kept_iteration), report.evals[-1]), report.evals[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("--seeds", type=int, default=3, help="runs per arm (seed=0..N-1)")
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, of: {', '.join(ARMS)}")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    recipe = load_recipe(Path(args.recipe), args.overrides)
    arms = args.arms.split(",")
    runs = {BASE: [], **{arm: [] for arm in arms}}
    for seed in range(args.seeds):
        for arm in arms:
            run_dir = run_dir_of(Path(recipe.run_dir), arm, seed)
            train(args.recipe, arm_overrides(arm, seed, run_dir, args.overrides))
            final, base = final_eval(run_dir)
            runs[arm].append(final)
        runs[BASE].append(base)
    text = (f"# Baseline ladder of {recipe.name} (greedy test accuracy, {args.seeds} seeds per arm)\n\n"
            f"overrides: `{' '.join(args.overrides) or 'none'}`\n\n" + ladder_table(runs))
    out = Path(recipe.run_dir).with_name(Path(recipe.run_dir).name + "-ladder.md")
    out.write_text(text)
    print(text + f"\n[baselines] written: {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
