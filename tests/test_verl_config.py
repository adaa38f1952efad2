"""Each role's verl settings: when the rollout's log-probs stand in for pi_old."""

from pathlib import Path

import pytest

from coevolve.backend.verl_config import role_settings
from coevolve.recipe.load import DEFAULT_RECIPE, RECIPES_DIR, load_recipe

KEYS = ("actor_rollout_ref.rollout.calculate_log_probs", "algorithm.rollout_correction.bypass_mode")


@pytest.mark.parametrize("overrides, reused", [
    ([], True),  # the CPU default: HF rollout, top_p 1, full fine-tuning
    (["challenger.top_p=0.9"], False),  # a nucleus cut: the rollout's distribution differs
    (["model.lora_rank=8"], False),  # the rollout serves merged LoRA weights
])
def test_cpu_hf_rollout_reuses_its_log_probs_only_when_they_match_the_actor(overrides, reused):
    recipe = load_recipe(DEFAULT_RECIPE, overrides)
    settings = role_settings(recipe, "challenger", "model", Path("run"))
    assert [settings[k] for k in KEYS] == [reused, reused]


def test_vllm_rollout_recomputes_pi_old():
    recipe = load_recipe(RECIPES_DIR / "math.yaml")
    settings = role_settings(recipe, "solver", "model", Path("run"))
    assert [settings[k] for k in KEYS] == [False, False]
