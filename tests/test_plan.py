"""The dry run: every recipe resolves to valid verl configs and a plan, with no model loaded."""

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from coevolve.plan import iteration_budget, plan_dict, resource_plan
from coevolve.recipe import RECIPES_DIR, load_recipe

RECIPES = sorted(RECIPES_DIR.glob("*.yaml"))


def test_iteration_budget_counts_each_generation():
    recipe = load_recipe(RECIPES_DIR / "base.yaml")  # the published R-Zero numbers
    budget = {g.what: g for g in iteration_budget(recipe, heldout_questions=100)}
    # challenger: 5 steps x 16 prompts x group 4; each question voted on m = 10 times
    assert budget["challenger rollouts"].sequences == 5 * 16 * 4
    assert budget["solver votes for challenger rewards"].sequences == 5 * 16 * 4 * 10
    # dataset: N = 8000 questions, m = 10 votes each
    assert budget["solver votes for the dataset"].sequences == 80_000
    # solver: 15 steps x 128 prompts x group 5
    assert budget["solver rollouts"].sequences == 15 * 128 * 5
    assert budget["held-out evaluation (greedy)"].sequences == 100
    plan = plan_dict(recipe, 100)
    assert plan["iteration_trained_sequences"] == 5 * 16 * 4 + 15 * 128 * 5
    assert plan["iteration_max_generated_tokens"] == sum(g.max_tokens for g in budget.values())


@pytest.mark.parametrize(
    "overrides, total",
    [
        ([], 2),  # CPU default: one logical slot per role
        (["resources.device=cuda", "resources.rollout=vllm", "resources.nnodes=2",
          "resources.gpus_per_node=4"], 16),  # two nodes x 4 GPUs per role, both roles
    ],
)
def test_resource_plan_counts_gpus_for_both_roles(overrides, total):
    plan = resource_plan(load_recipe(RECIPES_DIR / "arithmetic-cpu.yaml", overrides))
    assert plan.total_gpus == total


@pytest.mark.slow
@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_every_recipe_dry_runs(path, tmp_path):
    pytest.importorskip("verl")
    from coevolve.backend.dry_run import dry_run

    recipe = load_recipe(path, [f"run_dir={tmp_path}"])
    out = dry_run(recipe)
    plan = json.loads((out / "plan.json").read_text())
    assert plan["recipe"] == recipe.name
    for role in ("challenger", "solver"):
        config = OmegaConf.load(out / f"verl_{role}.yaml")
        role_config = getattr(recipe, role)
        assert config.actor_rollout_ref.rollout.n == role_config.group_size
        assert config.data.train_batch_size == role_config.batch_size
        assert config.actor_rollout_ref.actor.optim.lr == role_config.lr
    assert not Path(recipe.model.path, "never-created").exists()
