"""The challenger bench: leading indicators of the question writer's reward designs, solver frozen.

Without training, the base challenger's replies are scored under each variant's prompts, copy
test and reward (coevolve/measure/challenger_bench.py): a design whose groups carry no gradient
cannot teach the challenger anything, whatever the budget. Every variant sees the same
categories and sampling seeds; the solver votes with the recipe's `vote.*` settings.

    python tools/bench_challenger.py recipes/arithmetic-cpu.yaml --steps 2 --batch 8 --group 4
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

from coevolve.domains import build_domain
from coevolve.measure.challenger_bench import ChallengerBench, Variant, pooled
from coevolve.recipe.load import DEFAULT_RECIPE, load_recipe
from coevolve.run.sampling import SamplingParams, vote_params


def variants(recipe) -> list[Variant]:
    """The earliest design, the three rungs alone, the rungs with three shown examples as the
    default recipe had them, and the recipe's own design (a partial question to complete)."""
    c = recipe.challenger
    shown = {"prompt": "examples", "shown": 3, "temperature": 0.7}
    return [Variant("today (copy = -1, ROUGE-L vs all, window, clamp, peak 0.5)", "today", **shown),
            Variant("rungs (copy -0.5, per-prompt canonical copy test, drawn examples, peak 0.5)", "rungs",
                    copy_reward=c.copy_reward, **shown),
            Variant(f"rungs + peak {c.uncertainty_peak} + 1 own example, 3 examples at T 0.7", "rungs",
                    peak=c.uncertainty_peak, copy_reward=c.copy_reward, own_examples=1, **shown),
            Variant(f"the recipe: {recipe.domain.options.get('challenger_prompt', 'examples')} prompt, "
                    f"{c.seeds_per_prompt} example(s), T {c.temperature}, rungs + peak {c.uncertainty_peak}",
                    "rungs", peak=c.uncertainty_peak, copy_reward=c.copy_reward, own_examples=c.own_examples)]


def run_variant(recipe, variant: Variant, generator, args) -> dict:
    """`args.steps` bench steps of one variant; its pooled indicators and its seconds."""
    options = dict(recipe.domain.options)
    if variant.prompt is not None:
        options["challenger_prompt"] = variant.prompt
    domain = build_domain(recipe.domain.name, options)
    categories = recipe.domain.categories or list(domain.categories())
    c = recipe.challenger
    temperature = c.temperature if variant.temperature is None else variant.temperature
    seeds = {cat: domain.seed_questions(cat, max(c.example_pool, 16), recipe.seed) for cat in categories}
    bench = ChallengerBench(domain, categories, variant, seeds=seeds,
                            shown=c.seeds_per_prompt if variant.shown is None else variant.shown,
                            band=(recipe.dataset.band_low, recipe.dataset.band_high), run_seed=recipe.seed)
    start = time.monotonic()
    steps = []
    for step in range(args.steps):
        def write(messages, n, step=step):
            return generator.generate(messages, SamplingParams(n=n, temperature=temperature, top_p=c.top_p,
                                                               max_new_tokens=c.max_new_tokens), seed=step)

        def sample(messages, n, step=step):
            return generator.generate(list(messages), vote_params(recipe, n), seed=1000 + step)

        steps.append(bench.step(step, batch=args.batch, group=args.group, write=write, sample=sample,
                                samples=recipe.vote.samples))
        print(f"  {variant.name} step {step}: {steps[-1]}", flush=True)
    return {"variant": variant.name, **pooled(steps), "seconds": round(time.monotonic() - start, 1),
            "steps": [asdict(s) for s in steps]}


def table(rows: list[dict]) -> str:
    def fmt(value) -> str:
        return "-" if value is None else f"{value:.2f}"

    lines = ["| variant | well-formed | new-valid | groups with gradient | uncertainty term | in-band share "
             "| reward mean | seconds |", "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['variant']} | {fmt(r['well_formed'])} | {fmt(r['new_valid'])} | "
              f"{fmt(r['groups_with_gradient'])} | {fmt(r['uncertainty_mean'])} | {fmt(r['in_band_share'])} | "
              f"{fmt(r['reward_mean'])} | {r['seconds']:.0f} |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe", nargs="?", default=str(DEFAULT_RECIPE))
    parser.add_argument("--steps", type=int, default=2, help="bench steps per variant")
    parser.add_argument("--batch", type=int, default=8, help="prompts per step")
    parser.add_argument("--group", type=int, default=4, help="replies per prompt (the GRPO group)")
    parser.add_argument("--json", type=Path, default=None, help="write every step's indicators here")
    parser.add_argument("--variants", default="", help="comma-separated positions (0-based) of the variants "
                        "to run; empty: all")
    parser.add_argument("overrides", nargs="*", default=[], help="recipe overrides, key=value")
    args = parser.parse_args()
    recipe = load_recipe(Path(args.recipe), args.overrides)

    from coevolve.backend.generation.generator import load_generator
    from coevolve.backend.models import prepare_base_model

    generator = load_generator(recipe, prepare_base_model(recipe))
    chosen = [variants(recipe)[int(k)] for k in args.variants.split(",")] if args.variants else variants(recipe)
    rows = []
    for variant in chosen:
        rows.append(run_variant(recipe, variant, generator, args))
        if args.json is not None:  # after every variant: a killed bench keeps what it measured
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(rows, indent=2))
    print(table(rows))


if __name__ == "__main__":
    main()
