"""`coevolve train RECIPE --dry-run`: the exact verl config of each role and the plan, no model.

Composes and validates each role's verl configuration exactly as a real run would (hydra
compose + verl's own `validate_config`), writes it next to the resource plan and the
iteration budget under `<run_dir>/dry_run/`, and prints the plan. Nothing is started: no
Ray, no model, no GPU; the model path and held-out files need not exist yet.
"""

from __future__ import annotations

import json
from pathlib import Path

from coevolve.backend.verl_config import compose, role_settings
from coevolve.domains import build_domain
from coevolve.measure.evaluation import EvalInputError, recipe_heldout
from coevolve.recipe.schema import Recipe
from coevolve.run import preflight
from coevolve.run.plan import format_plan, plan_dict
from coevolve.run.roles import ROLES
from coevolve.runstate import write_atomically


def dry_run(recipe: Recipe) -> Path:
    """Write `verl_<role>.yaml` and `plan.json` for `recipe`; returns their folder."""
    from omegaconf import OmegaConf
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    out = Path(recipe.run_dir) / "dry_run"
    heldout, heldout_votes, missing = _heldout_count(recipe)
    for role in ROLES:
        config = compose(role_settings(recipe, role, recipe.model.path, Path(recipe.run_dir)))
        validate_config(config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config))
        write_atomically(out / f"verl_{role}.yaml", OmegaConf.to_yaml(config))
    plan = plan_dict(recipe, heldout, heldout_votes)
    write_atomically(out / "plan.json", json.dumps(plan, indent=2))
    print(format_plan(plan))
    print(_memory_line(recipe))
    if missing:
        print(f"\nheld-out evaluation counted as 0 questions: {missing}\n(a real run stops on this)")
    print(f"\nverl configs and plan written to {out}/")
    return out


def _memory_line(recipe: Recipe) -> str:
    """The estimated peak memory of a CPU run (coevolve/run/preflight.py) and what lowers it."""
    if recipe.resources.device != "cpu":
        return "\nmemory: on the GPUs, sized by verl and vLLM (docs/scaling.md)"
    if not (Path(recipe.model.path) / "config.json").is_file():
        return f"\nmemory: not estimated until {recipe.model.path} is prepared (its config.json sizes it)"
    domain = build_domain(recipe.domain.name, recipe.domain.options)
    try:
        categories = tuple(recipe.domain.categories or domain.categories())
        tokens = preflight.prompt_tokens(preflight.typical_prompts(recipe, domain, categories), recipe.model.system_turn)
    finally:
        domain.close()
    shape = preflight.model_shape(recipe.model.path)
    estimate = preflight.estimate_memory(recipe, shape, tokens)
    gib = preflight.GIB
    parts = ", ".join(f"{role} update +{extra / gib:.1f}" for role, extra in estimate.training.items())
    lower = "; ".join(f"{key}={value} -{saved / gib:.1f} GiB" for key, value, saved in
                      preflight.savings(recipe, shape, tokens))
    return (f"\nmemory (estimated peak of the process tree): {estimate.peak / gib:.1f} GiB = at rest "
            f"{estimate.fixed / gib:.1f} GiB + the largest of ({parts}, vote batch +{estimate.voting / gib:.1f}) GiB;"
            f" {tokens} prompt tokens\n  lower it with: {lower or 'nothing listed'}")


def _heldout_count(recipe: Recipe) -> tuple[int, int, str]:
    """Held-out questions the run would evaluate, those it also votes on, and why none if they
    cannot be read.

    A dry run sizes a run before its data is in place (a recipe's benchmark paths may still
    be placeholders), so unreadable held-out questions are reported, not fatal.
    """
    domain = build_domain(recipe.domain.name, recipe.domain.options)
    try:
        questions, voted = recipe_heldout(recipe, domain)
    except EvalInputError as error:
        return 0, 0, str(error)
    finally:
        domain.close()
    return len(questions), len(voted), ""
