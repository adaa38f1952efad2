"""The dry run: every recipe resolves to valid verl configs and a plan, with no model loaded."""

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from coevolve.recipe.load import RECIPES_DIR, load_recipe
from coevolve.run.plan import iteration_budget, plan_dict, resource_plan

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
          "resources.gpus_per_node=4", "challenger.micro_batch_size=4", "solver.micro_batch_size=4"],
         16),  # two nodes x 4 GPUs per role, both roles (micro-batches that fit 8 workers' shares)
    ],
)
def test_resource_plan_counts_gpus_for_both_roles(overrides, total):
    plan = resource_plan(load_recipe(RECIPES_DIR / "arithmetic-cpu.yaml", overrides))
    assert plan.total_gpus == total


@pytest.mark.slow
@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_every_recipe_dry_runs(path, tmp_path):
    pytest.importorskip("verl")
    from coevolve.backend.commands.dry_run import dry_run

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


# --- recipes/math-rzero.yaml against the published R-Zero setting ----------------------------
# Every expected number below is written from the R-Zero paper (Huang et al., 2025, "R-Zero:
# Self-Evolving Reasoning LLM from Zero Data") and its released settings: m = 10 votes (T 1.0, top_k 40); band 0.3 <= p <= 0.8; N = 8 000 questions per
# iteration (T 1.0, top_p 0.95); 3 iterations; lr 1e-6, weight decay 1e-2, low_var_kl 1e-2;
# challenger group 4, batch 16, "a few steps, e.g. 5-6"; solver group 5, rollout batch 512,
# train batch 128, "15-20 steps"; Qwen3-4B-Base on 8 GPUs.
RZERO = RECIPES_DIR / "math-rzero.yaml"
RZERO_CHALLENGER = 5 * 16 * 4  # steps x batch x group = 320 rollouts per iteration
RZERO_SOLVER = 15 * 512 * 5  # steps x rollout batch x group = 38 400 rollouts per iteration


def _rzero_heldout(tmp_path: Path) -> list[str]:
    """Two tiny benchmark files standing in for the ones a user points to."""
    rows = {"math500": ['{"question": "What is 1+1?", "answer": "2", "category": "algebra"}',
                        '{"question": "Area of a unit square?", "answer": "1", "category": "geometry"}'],
            "gsm8k": ['{"question": "Tom has 3 apples and eats 1. How many are left?", "answer": "2"}']}
    for stem, lines in rows.items():
        (tmp_path / f"{stem}.jsonl").write_text("\n".join(lines) + "\n")
    return [f"domain.options.heldout_files=[{tmp_path}/math500.jsonl,{tmp_path}/gsm8k.jsonl]"]


def test_rzero_plan_numbers_match_the_reference():
    plan = plan_dict(load_recipe(RZERO), heldout_questions=0)
    budget = {g["what"]: g for g in plan["iteration_budget"]}
    assert plan["iterations"] == 3
    assert plan["resources"]["total_gpus"] == 8
    assert budget["challenger rollouts"]["sequences"] == RZERO_CHALLENGER
    assert budget["solver votes for challenger rewards"]["sequences"] == RZERO_CHALLENGER * 10
    assert budget["dataset questions"]["sequences"] == 8000
    assert budget["solver votes for the dataset"]["sequences"] == 8000 * 10
    assert budget["solver rollouts"]["sequences"] == RZERO_SOLVER
    assert plan["iteration_trained_sequences"] == RZERO_CHALLENGER + RZERO_SOLVER
    assert load_recipe(RZERO).vote.adaptive.enabled is False  # R-Zero draws all m answers
    assert load_recipe(RZERO).solver.question_sampling == "uniform"  # and trains on its dataset as is


def test_gpu_hours_scale_inversely_with_the_assumed_throughput():
    recipe = load_recipe(RZERO)
    slow, fast = plan_dict(recipe, 0, tokens_per_gpu_s=5_000), plan_dict(recipe, 0, tokens_per_gpu_s=20_000)
    assert slow["iteration_generation_gpu_hours"] == pytest.approx(4 * fast["iteration_generation_gpu_hours"], rel=1e-2)


@pytest.mark.slow
def test_rzero_dry_run_prints_and_writes_the_reference_setting(tmp_path, capsys):
    pytest.importorskip("verl")
    from coevolve.backend.commands.dry_run import dry_run

    recipe = load_recipe(RZERO, [f"run_dir={tmp_path / 'run'}", *_rzero_heldout(tmp_path)])
    assert (recipe.vote.samples, recipe.vote.temperature, recipe.vote.top_k) == (10, 1.0, 40)
    assert (recipe.dataset.band_low, recipe.dataset.band_high) == (0.3, 0.8)
    assert (recipe.dataset.temperature, recipe.dataset.top_p) == (1.0, 0.95)
    assert recipe.model.dtype == "bfloat16"
    out = dry_run(recipe)
    printed = capsys.readouterr().out
    assert "8 GPU(s) in all" in printed
    assert f"{RZERO_SOLVER:,}" in printed and f"{8000 * 10:,}" in printed
    plan = json.loads((out / "plan.json").read_text())
    budget = {g["what"]: g for g in plan["iteration_budget"]}
    assert budget["held-out evaluation (greedy)"]["sequences"] == 3  # every benchmark line
    expected = {  # role: (group n, rollout batch, optimizer mini-batch), all in prompts
        "challenger": (4, 16, 16),  # R-Zero's challenger batch 16 is one update per step
        "solver": (5, 512, 128),  # rollout batch 512, train batch 128: 4 updates per step
    }
    for role, (group, batch, mini_batch) in expected.items():
        config = OmegaConf.load(out / f"verl_{role}.yaml")
        actor = config.actor_rollout_ref.actor
        assert config.actor_rollout_ref.rollout.n == group
        assert config.data.train_batch_size == batch
        assert actor.ppo_mini_batch_size == mini_batch
        assert (actor.optim.lr, actor.optim.weight_decay) == (1e-6, 1e-2)
        assert (actor.use_kl_loss, actor.kl_loss_coef, actor.kl_loss_type) == (True, 1e-2, "low_var_kl")
        assert config.actor_rollout_ref.rollout.name == "vllm"
        assert config.actor_rollout_ref.rollout.temperature == 1.0
        assert (config.trainer.nnodes, config.trainer.n_gpus_per_node) == (1, 4)  # 4 GPUs per role
        assert config.trainer.device == "cuda"


@pytest.mark.parametrize(
    "overrides, total, per_role_gpus",
    [
        ([], 8, 4),  # the recipe: one node, 4 GPUs per role
        (["resources.nnodes=2", "resources.gpus_per_node=8"], 32, 16),  # 4 nodes of 8: 2 per role
    ],
)
def test_rzero_gpu_hours_follow_the_token_budget(overrides, total, per_role_gpus):
    from coevolve.run.plan import DECODE_TOKENS_PER_GPU_S

    plan = plan_dict(load_recipe(RZERO, overrides), heldout_questions=0)
    assert plan["resources"]["total_gpus"] == total
    # each generation runs on its role's GPUs; every GPU of both roles is held throughout
    wall_h = plan["iteration_max_generated_tokens"] / (DECODE_TOKENS_PER_GPU_S * per_role_gpus) / 3600
    assert plan["iteration_generation_wall_hours"] == pytest.approx(wall_h, abs=1e-3)
    assert plan["iteration_generation_gpu_hours"] == pytest.approx(wall_h * total, abs=1e-2)


def test_cpu_plan_claims_no_gpu_hours():
    assert "iteration_generation_gpu_hours" not in plan_dict(load_recipe(RECIPES_DIR / "arithmetic-cpu.yaml"), 0)
