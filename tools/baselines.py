"""The baseline ladder (coevolve/measure/ladder.py): every arm, N seeds, pooled paired intervals.

Arms: base model, format-only, base challenger (challenger.steps=0), co-evolution, generator
questions, true labels, uniform curriculum; each run `--seeds` times (seed=0..N-1, the same
seeds in every arm, the same test questions). Each run resumes if killed; a finished run is
read, not repeated. The final solver of each run is the one it kept (on the dev split when
eval.keep_best_on_dev). Writes `<runs>/<name>-ladder.md` and prints it. Hours on 2 cores: by hand.

With `--archive DIR` every finished run's base and kept evaluations go to DIR (one small JSON per
arm and seed, with the commit it ran at), and a run already archived there is read, not run
again: seeds run in different sessions pool into one ladder (docs/results/ladder/arithmetic-cpu
holds the default recipe's; `make baselines` passes the recipe's folder). Delete an arm's files
when a change of the code makes them stale.

    python tools/baselines.py recipes/arithmetic-cpu.yaml --seeds 3 [--arms co-evolution,base-challenger] \
        [--archive docs/results/ladder/arithmetic-cpu] [key=value ...]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from coevolve.measure.ladder import ARMS, BASE, ArchivedRun, ladder_table, read_archived, write_archived
from coevolve.measure.report import load_report
from coevolve.recipe.load import load_recipe
from coevolve.runstate import BASE_EVAL, read_json


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


def archived(run_dir: Path, arm: str, seed: int, overrides: list[str]) -> ArchivedRun:
    """A finished run's base and kept evaluations, with what produced them."""
    report = load_report(run_dir)
    kept = report.kept_iteration if report.kept_iteration is not None else report.evals[-1].iteration
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parent, check=False).stdout.strip() or "unknown"
    iterations = [{"iteration": i.iteration, "dev_accuracy": i.dev_accuracy,
                   "pseudo_label_accuracy": i.pseudo_label_accuracy, "questions_kept": i.questions_kept}
                  for i in report.iterations]
    tests = {e.iteration: round(e.overall.value, 4) for e in report.evals}
    source = {"commit": commit, "overrides": arm_overrides(arm, seed, run_dir, overrides)[:-1],
              "kept_iteration": kept, "test_accuracy": tests, "iterations": iterations}
    base = run_dir / "eval" / f"0_{BASE_EVAL}.json"
    final = base if kept == 0 else run_dir / "eval" / f"{kept}_eval.json"  # 0: the base model was kept
    return ArchivedRun(arm, seed, source, read_json(base, "an evaluation"), read_json(final, "an evaluation"))


def drop_checkpoints(run_dir: Path) -> None:
    """Delete a finished run's model checkpoints and verl state (what resuming or reusing its
    models needs, not what the ladder reads)."""
    for name in ("checkpoints", "verl"):
        shutil.rmtree(run_dir / name, ignore_errors=True)
    print(f"[baselines] checkpoints dropped: {run_dir}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("--seeds", type=int, default=3, help="runs per arm (seed=0..N-1)")
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, of: {', '.join(ARMS)}")
    parser.add_argument("--archive", type=Path, help="read finished runs from and write them to this folder")
    parser.add_argument("--drop-checkpoints", action="store_true",
                        help="once a run is archived, delete its model checkpoints and verl state "
                             "(about 4-10 GB a run; the evaluations, datasets and TensorBoard logs stay)")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_intermixed_args()  # key=value overrides before or after the options
    if args.drop_checkpoints and not args.archive:
        parser.error("--drop-checkpoints needs --archive: a run's checkpoints go once its evaluations are archived")
    recipe = load_recipe(Path(args.recipe), args.overrides)
    arms = args.arms.split(",")
    done = read_archived(args.archive) if args.archive else {}
    runs = {BASE: [], **{arm: [] for arm in arms}}
    for seed in range(args.seeds):
        for arm in arms:
            if (arm, seed) not in done:
                run_dir = run_dir_of(Path(recipe.run_dir), arm, seed)
                train(args.recipe, arm_overrides(arm, seed, run_dir, args.overrides))
                done[(arm, seed)] = archived(run_dir, arm, seed, args.overrides)
                if args.archive:
                    print(f"[baselines] archived: {write_archived(args.archive, done[(arm, seed)])}", flush=True)
                if args.drop_checkpoints:
                    drop_checkpoints(run_dir)
            base, final = done[(arm, seed)].points()
            runs[arm].append(final)
        runs[BASE].append(base)
    text = (f"# Baseline ladder of {recipe.name} (greedy test accuracy, {args.seeds} seeds per arm)\n\n"
            f"overrides: `{' '.join(args.overrides) or 'none'}`\n\n" + ladder_table(runs))
    out = Path(recipe.run_dir).with_name(Path(recipe.run_dir).name + "-ladder.md")
    out.parent.mkdir(parents=True, exist_ok=True)  # every seed may come from the archive
    out.write_text(text)
    print(text + f"\n[baselines] written: {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
