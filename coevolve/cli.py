"""The `coevolve` command: `coevolve train RECIPE [key=value ...] [--resume]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from coevolve.recipe import DEFAULT_RECIPE, RecipeError, load_recipe


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coevolve", description="Challenger/solver co-evolution on verl.")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="run (or resume) a recipe")
    train.add_argument("recipe", nargs="?", default=str(DEFAULT_RECIPE),
                       help=f"recipe YAML (default: {DEFAULT_RECIPE.name})")
    train.add_argument("overrides", nargs="*", help="key=value overrides, e.g. iterations=1")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in the recipe's run_dir (rerunning it does the same)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        recipe = load_recipe(Path(args.recipe), args.overrides)
        if args.resume and not (Path(recipe.run_dir) / "state.json").is_file():
            raise RecipeError(f"--resume: {recipe.run_dir} has no finished phase to resume from")
        from coevolve.loop import train

        state = train(recipe)
    except RecipeError as err:
        print(f"coevolve: {err}", file=sys.stderr)
        return 2
    print(f"[coevolve] finished: {recipe.run_dir} (phases {', '.join(state.completed)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
