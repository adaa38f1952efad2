"""The memory preflight (coevolve/run/preflight.py): the estimate's parts, and a recipe that
cannot fit is refused before anything starts, with the keys that lower its peak."""

import json

import pytest

from coevolve.recipe.load import DEFAULT_RECIPE, load_recipe
from coevolve.run import preflight
from coevolve.run.preflight import GIB, MemoryPreflightError

# SmolLM2-135M's shape (the default model)
SMOL = {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
        "num_key_value_heads": 3, "head_dim": 64, "vocab_size": 49152, "tie_word_embeddings": True}
TOKENS = {"challenger": 140, "solver": 45}


@pytest.fixture
def shape(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(SMOL))
    return preflight.model_shape(tmp_path)


def test_model_shape_counts_smollm2_parameters(shape):
    assert shape.parameters == 134_515_008  # what the converted checkpoint holds
    assert shape.kv_dim == 3 * 64


def test_missing_config_is_an_error(tmp_path):
    with pytest.raises(preflight.RecipeError, match="config.json"):
        preflight.model_shape(tmp_path)


@pytest.mark.parametrize(("override", "part", "direction"), [
    ("challenger.micro_batch_size=16", "challenger", 1),  # twice the activations
    ("challenger.micro_batch_size=2", "challenger", -1),
    ("solver.max_new_tokens=48", "solver", 1),  # longer sequences
    ("vote.batch_size=128", "voting", -1),  # half the rows: half the KV cache
    ("model.lora_rank=8", "solver", -1),  # no full-model gradients or AdamW moments
])
def test_estimate_moves_with_the_keys(shape, override, part, direction):
    base = preflight.estimate_memory(load_recipe(DEFAULT_RECIPE), shape, TOKENS)
    changed = preflight.estimate_memory(load_recipe(DEFAULT_RECIPE, [override]), shape, TOKENS)
    value = (lambda e: e.voting) if part == "voting" else (lambda e: e.training[part])
    assert (value(changed) - value(base)) * direction > 0
    assert changed.fixed == base.fixed


@pytest.mark.parametrize(("available_gib", "outcome"), [
    (64, None),  # room to spare: silent
    (11.5, "warning"),  # fits, with less than 15 % to spare
    (6, "error"),  # cannot fit: refused
])
def test_check_fits(shape, available_gib, outcome):
    recipe = load_recipe(DEFAULT_RECIPE)
    peak = preflight.estimate_memory(recipe, shape, TOKENS).peak
    assert 9.5 * GIB < peak < 11 * GIB  # the default recipe, as the dry run prints it
    if outcome == "error":
        with pytest.raises(MemoryPreflightError) as raised:
            preflight.check_fits(recipe, shape, TOKENS, available_gib * GIB)
        message = str(raised.value)
        lower = preflight.savings(recipe, shape, TOKENS)
        assert len(lower) >= 2 and "model.lora_rank=8 saves" in message  # no full-model AdamW state
        assert all(f"{key}={value} saves {saved / GIB:.1f} GiB" in message for key, value, saved in lower)
        assert f"{peak / GIB:.1f} GiB" in message
        return
    result = preflight.check_fits(recipe, shape, TOKENS, available_gib * GIB)
    assert (result is None) == (outcome is None)
    if outcome == "warning":
        assert "little margin" in result and "model.lora_rank=8 saves" in result


def test_savings_are_real_differences(shape):
    recipe = load_recipe(DEFAULT_RECIPE)
    peak = preflight.estimate_memory(recipe, shape, TOKENS).peak
    for key, value, saved in preflight.savings(recipe, shape, TOKENS):
        lowered = preflight.estimate_memory(load_recipe(DEFAULT_RECIPE, [f"{key}={value}"]), shape, TOKENS)
        assert peak - lowered.peak == saved > 0


def test_prompt_tokens_count_the_system_turn():
    texts = {"challenger": "x" * 350, "solver": "x" * 35}
    none = preflight.prompt_tokens(texts, "none")
    assert none == {"challenger": 100 + preflight.TEMPLATE_TOKENS, "solver": 10 + preflight.TEMPLATE_TOKENS}
    default = preflight.prompt_tokens(texts, "default")  # the model's own turn, size unknown: assumed
    assert default["solver"] == none["solver"] + preflight.DEFAULT_SYSTEM_TOKENS
    own = preflight.prompt_tokens(texts, "y" * 70)  # the recipe's own text: 20 more tokens
    assert own["solver"] == none["solver"] + 20


def test_the_run_refuses_before_starting(tmp_path):
    """Through the loop: a backend whose check refuses stops the run before Ray starts."""
    from coevolve.run.loop import CoEvolution
    from helpers.fake_backend import FakeBackend

    class TooSmall(FakeBackend):
        def check_memory(self, recipe, model, prompts):
            assert set(prompts) == {"challenger", "solver"} and all(prompts.values())
            raise MemoryPreflightError("estimated peak 99 GiB; vote.batch_size=32 saves 1 GiB")

    backend = TooSmall()
    recipe = load_recipe(DEFAULT_RECIPE, [f"run_dir={tmp_path}"])
    with pytest.raises(MemoryPreflightError, match="vote.batch_size"):
        CoEvolution(recipe, backend).run()
    assert "start" not in backend.calls


@pytest.mark.parametrize(("domain_name", "solver_at_least"), [
    ("arithmetic", 10),  # a seed question: "What is 1 * 7? Be brief."
    ("toy", 40 * 3),  # no seed questions: as long as the challenger may write (40 tokens)
])
def test_typical_prompts(domain_name, solver_at_least):
    from coevolve.domains import build_domain
    from helpers.toy_domain import ToyDomain

    recipe = load_recipe(DEFAULT_RECIPE, ["challenger.max_new_tokens=40"])
    domain = ToyDomain() if domain_name == "toy" else build_domain("arithmetic")
    prompts = preflight.typical_prompts(recipe, domain, tuple(domain.categories()))
    assert set(prompts) == {"challenger", "solver"} and len(prompts["challenger"]) > 20
    assert len(prompts["solver"]) >= solver_at_least


def test_the_dataset_questions_batch_counts_the_challenger_prompt(shape):
    """The challenger writes up to vote.batch_size questions at once, each with its long prompt."""
    few = preflight.estimate_memory(load_recipe(DEFAULT_RECIPE, ["dataset.questions=8"]), shape, TOKENS)
    many = preflight.estimate_memory(load_recipe(DEFAULT_RECIPE, ["dataset.questions=256"]), shape, TOKENS)
    assert many.voting > few.voting
