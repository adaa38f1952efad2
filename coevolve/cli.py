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
    train.add_argument("--dry-run", action="store_true",
                       help="write each role's verl config, the resource plan and the iteration "
                            "budget to <run_dir>/dry_run/ without starting anything")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    # Overrides may come after flags (`train R --dry-run a=1`), which argparse leaves unparsed.
    args, extra = parser.parse_known_args(argv)
    unknown = [arg for arg in extra if arg.startswith("-")]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.overrides = [*args.overrides, *extra]
    try:
        recipe = load_recipe(Path(args.recipe), args.overrides)
        if args.dry_run:
            from coevolve.backend.dry_run import dry_run

            dry_run(recipe)
            return 0
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
