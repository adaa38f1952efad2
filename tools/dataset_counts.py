"""Per run and iteration: how many kept questions could teach the solver anything.

    python tools/dataset_counts.py runs/arithmetic-cpu-co-evolution-seed0 runs/arithmetic-cpu-base-challenger-seed0

Reads each run's recipe (for its domain) and `data/iter_*/solver_dataset.jsonl`; prints one
row per run and iteration (coevolve/measure/datasets.py says what each count means).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from coevolve.domains import build_domain
from coevolve.measure.datasets import summarise
from coevolve.recipe.load import load_recipe
from coevolve.runstate import load_dataset

COLUMNS = ("run", "iteration", "kept", "split votes", "trivial", "informative", "distinct", "label acc")


def rows(run_dir: Path) -> list[tuple[str, ...]]:
    recipe_file = run_dir / "recipe.yaml"
    if not recipe_file.is_file():
        raise SystemExit(f"{run_dir}: no recipe.yaml; is it a run directory?")
    recipe = load_recipe(recipe_file)
    domain = build_domain(recipe.domain.name, recipe.domain.options)
    files = sorted(run_dir.glob("data/iter_*/solver_dataset.jsonl"))
    if not files:
        raise SystemExit(f"{run_dir}: no data/iter_*/solver_dataset.jsonl; has a dataset phase finished?")
    out = []
    for path in files:
        s = summarise(domain, *load_dataset(path))
        accuracy = "-" if s.label_accuracy is None else f"{s.label_accuracy:.2f}"
        out.append((run_dir.name, str(int(path.parent.name.split("_")[1])), str(s.kept), str(s.split_votes),
                    str(s.trivial), str(s.informative), str(s.distinct_texts), accuracy))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", type=Path)
    args = parser.parse_args()
    table = [row for run_dir in args.run_dirs for row in rows(run_dir)]  # every run read before printing
    print("| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS))
    for row in table:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
