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


@pytest.mark.parametrize(
    "run_dir, name, model",
    [
        ("runs/a,b", "x=y", "/models/it's"),  # a comma, an equals sign, a quote
        ("runs/[v2] try", "n", "/models/m\\"),  # brackets and a space; a trailing backslash
        ("runs/plain", "plain-1.5", "/models/Qwen3-4B-Base"),  # nothing to quote
    ],
)
def test_recipe_values_with_odd_characters_reach_verl_as_one_value(run_dir, name, model):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from coevolve.backend.verl_config import overrides

    recipe = load_recipe(DEFAULT_RECIPE, [f"run_dir={run_dir}", f"name={name}"])
    settings = role_settings(recipe, "solver", model, Path(run_dir))
    parser = OverridesParser.create()
    parsed = {o.key_or_group: o.value() for o in map(parser.parse_override, overrides(settings))}
    for key, value in settings.items():
        if isinstance(value, str):
            assert str(parsed[key.lstrip("+")]) == value, key
    assert parsed["actor_rollout_ref.model.path"] == model
