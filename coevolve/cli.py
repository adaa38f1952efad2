"""The `coevolve` command.

`coevolve train RECIPE [key=value ...] [--resume] [--dry-run]` runs a recipe;
`coevolve eval CHECKPOINT --recipe RECIPE [key=value ...]` evaluates a checkpoint on its
held-out sets; `coevolve probe RECIPE [key=value ...]` measures, before any training, whether
the model's majority votes would be right on the questions the band keeps; `coevolve report
RUN_DIR` writes a run's report (held-out gains with intervals, label quality). Bad input of any
exits with code 2 and a message naming what to fix.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import traceback
from pathlib import Path

from coevolve.measure.evaluation import EvalInputError
from coevolve.recipe.load import DEFAULT_RECIPE, RecipeError, load_recipe
from coevolve.recipe.schema import Recipe
from coevolve.runstate import RunDirError


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
    train.add_argument("--verbose", action="store_true",
                       help="also show what verl, Ray and transformers print (by default it goes to "
                            "<run_dir>/logs/run.log)")
    evaluate = commands.add_parser(
        "eval", help="evaluate a checkpoint on the recipe's held-out sets, greedy and majority-of-k")
    evaluate.add_argument("checkpoint", help="Hugging Face model directory (with config.json), e.g. "
                                             "runs/<name>/checkpoints/iter_001/solver")
    evaluate.add_argument("--recipe", default=str(DEFAULT_RECIPE),
                          help=f"recipe whose held-out sets, sampling and run_dir to use "
                               f"(default: {DEFAULT_RECIPE.name})")
    evaluate.add_argument("overrides", nargs="*", help="key=value overrides, e.g. eval.samples=4")
    evaluate.add_argument("--label", help="name of the outputs under <run_dir>/eval/checkpoints/ "
                                          "(default: from the checkpoint path, e.g. iter_001_solver)")
    evaluate.add_argument("--verbose", action="store_true",
                          help="also show what transformers prints (by default: <run_dir>/logs/eval.log)")
    probe = commands.add_parser(
        "probe", help="before training: per category and vote temperature, greedy and majority "
                      "accuracy and whether the in-band pseudo-labels are right (self-trainable)")
    probe.add_argument("recipe", nargs="?", default=str(DEFAULT_RECIPE),
                       help=f"recipe YAML (default: {DEFAULT_RECIPE.name})")
    probe.add_argument("overrides", nargs="*", help="key=value overrides, e.g. vote.samples=8")
    probe.add_argument("--model", help="Hugging Face model directory (default: the recipe's base model)")
    probe.add_argument("--temperatures", default="0.2,0.5,1.0",
                       help="comma-separated vote temperatures to measure (default: 0.2,0.5,1.0)")
    probe.add_argument("--samples", type=int, help="votes per question (default: vote.samples)")
    probe.add_argument("--split", choices=("dev", "test"),
                       help="held-out split (default: dev when eval.dev_per_category > 0, else test)")
    probe.add_argument("--verbose", action="store_true",
                       help="also show what transformers prints (by default: <run_dir>/logs/probe.log)")
    report = commands.add_parser(
        "report", help="write <run_dir>/report.md and report.png: held-out accuracy per iteration "
                       "and category with intervals, the gain over the base model, label quality")
    report.add_argument("run_dir", help="a run directory, e.g. runs/arithmetic-cpu")
    report.add_argument("--trust-recipe", action="store_true",
                        help="let the run's saved recipe import its own domain code (module:Class), "
                             "needed only for the text overlap of runs of older versions")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    # Overrides may come after flags (`train R --dry-run a=1`), which argparse leaves unparsed.
    args, extra = parser.parse_known_args(argv)
    unknown = [arg for arg in extra if arg.startswith("-")]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command == "report":
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        return _report(Path(args.run_dir), trust_recipe=args.trust_recipe)
    args.overrides = [*args.overrides, *extra]
    try:
        recipe = load_recipe(Path(args.recipe), args.overrides)
        if args.command == "eval":
            return _evaluate(recipe, Path(args.checkpoint), args.label, verbose=args.verbose)
        if args.command == "probe":
            return _probe(recipe, args)
        if args.dry_run:
            from coevolve.backend.commands.dry_run import dry_run

            dry_run(recipe)
            return 0
        if args.resume and not (Path(recipe.run_dir) / "state.json").is_file():
            raise RecipeError(f"--resume: {recipe.run_dir} has no finished phase to resume from")
        return _train(recipe, verbose=args.verbose)
    except (RecipeError, EvalInputError, RunDirError) as err:
        print(f"coevolve: {err}", file=sys.stderr)
        return 2


def _train(recipe: Recipe, verbose: bool, backend=None) -> int:
    """The run, with everything but coevolve's own progress in `<run_dir>/logs/run.log`."""
    from coevolve.run.console import Console, quiet_output
    from coevolve.run.loop import CoEvolution, stop_signal

    if backend is None:
        from coevolve.backend.verl_backend import VerlBackend

        backend = VerlBackend()
    log = Path(recipe.run_dir) / "logs" / "run.log"
    console = Console()
    if not verbose:
        console.say(f"run {recipe.run_dir}: what verl, Ray and transformers print goes to {log} "
                    "(--verbose shows it here)")
    with quiet_output(log, quiet=not verbose) as terminal:
        console.stream = terminal
        try:
            state = CoEvolution(recipe, backend, console).run()
        except KeyboardInterrupt as err:  # Ctrl-C, or a stop signal (RunStopped, or Ray's re-raise)
            signum = stop_signal(err)
            console.say(stopped_message(recipe, signal.Signals(signum).name))
            return 128 + signum
        except Exception as err:  # noqa: BLE001 - re-raised unless a Ray worker's failure
            message = backend.describe_failure(err)
            if message is None:
                raise
            traceback.print_exc()  # the whole story, into the log
            console.say(f"ERROR {message}\nthe full traceback is in {log}; the run resumes from its last "
                        f"committed phase with the same command")
            return 1
    console.stream = sys.stdout
    console.say(f"finished: {recipe.run_dir} (phases {', '.join(state.completed)})")
    return 0


def stopped_message(recipe: Recipe, why: str) -> str:
    """What a stopped run kept and how to go on."""
    from coevolve.runstate import load_state

    state = load_state(Path(recipe.run_dir))
    committed = ", ".join(state.completed) if state and state.completed else "nothing yet"
    command = shlex.join(["coevolve", "train", *sys.argv[2:]]) if sys.argv[1:2] == ["train"] else "the same command"
    return (f"stopped by {why}; Ray and both trainers were shut down. Committed phases: {committed} "
            f"(a phase in progress is redone). Resume with the same command: {command}")


def _evaluate(recipe: Recipe, checkpoint: Path, label: str | None, *, verbose: bool = False) -> int:
    from coevolve.backend.commands.evaluate import evaluate_checkpoint
    from coevolve.run.console import quiet_output

    with quiet_output(Path(recipe.run_dir) / "logs" / "eval.log", quiet=not verbose):
        result, outputs = evaluate_checkpoint(recipe, checkpoint, label)
    print(result.markdown(), end="")
    print(f"[coevolve] eval written: {outputs.markdown}, {outputs.json}, "
          f"TensorBoard run {outputs.tensorboard}", flush=True)
    return 0


def _report(run_dir: Path, *, trust_recipe: bool = False) -> int:
    from coevolve.measure.report import ReportError, summary, write_report

    try:
        report, md, png = write_report(run_dir, trust_recipe=trust_recipe)
    except ReportError as err:
        print(f"coevolve: {err}", file=sys.stderr)
        return 2
    print(summary(report))
    print(f"[coevolve] report written: {md}, {png}", flush=True)
    return 0


def _probe(recipe: Recipe, args: argparse.Namespace) -> int:
    from coevolve.backend.commands.probe import parse_temperatures, run_probe
    from coevolve.backend.models import prepare_base_model
    from coevolve.measure.probe import probe_markdown
    from coevolve.run.console import quiet_output

    temperatures = parse_temperatures(args.temperatures)  # checked before a model is loaded
    split = args.split or ("dev" if recipe.eval.dev_per_category > 0 else "test")
    if split == "test":
        print("[coevolve] probe: measuring on the test split; settings chosen on it bias the "
              "run's evaluation (set eval.dev_per_category for a disjoint dev split)", flush=True)
    model = Path(args.model) if args.model else Path(prepare_base_model(recipe))
    with quiet_output(Path(recipe.run_dir) / "logs" / "probe.log", quiet=not args.verbose):
        report, outputs = run_probe(recipe, model, temperatures=temperatures,
                                    samples=args.samples or recipe.vote.samples, split=split)
    print(probe_markdown(report), end="")
    print(f"[coevolve] probe written: {outputs.markdown}, {outputs.json}, {outputs.plot}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
