"""`model.system_turn`: the same chat on every path (verl's datasets, the rollout servers' votes,
HFGenerator), under the model's own system turn, an empty one, or the recipe's text."""

import pytest

from coevolve.recipe.load import RECIPES_DIR, load_recipe
from coevolve.run.sampling import chat_messages
from coevolve.selfplay.examples import ExamplePool

USER = {"role": "user", "content": "What is 2 + 3?"}

# A template that, like SmolLM2's, writes its own system turn when the chat has none.
DEFAULT_SYSTEM_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}<|im_start|>system\nI am the default.<|im_end|>\n{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.mark.parametrize(("system_turn", "expected"), [
    ("default", [USER]),  # the user turn alone: the template adds the model's own
    ("none", [{"role": "system", "content": ""}, USER]),  # an empty system turn
    ("Answer with a number.", [{"role": "system", "content": "Answer with a number."}, USER]),  # the recipe's text
])
def test_chat_messages(system_turn, expected):
    assert chat_messages("What is 2 + 3?", system_turn) == expected


def test_recipe_default_is_the_model_default():
    assert load_recipe(RECIPES_DIR / "base.yaml").model.system_turn == "default"


@pytest.mark.parametrize(("system_turn", "present", "absent"), [
    ("default", "I am the default.", "<|im_start|>system\n<|im_end|>"),  # the template's own turn
    ("none", "<|im_start|>system\n<|im_end|>", "I am the default."),  # markers only
    ("Be exact.", "<|im_start|>system\nBe exact.<|im_end|>", "I am the default."),
])
def test_generator_and_datasets_send_the_system_turn(tmp_path, system_turn, present, absent):
    pytest.importorskip("torch")
    pytest.importorskip("verl")
    from coevolve.backend import data as vdata
    from coevolve.backend.generation.generator import HFGenerator
    from coevolve.domains import build_domain
    from coevolve.records import Question
    from helpers.tiny_model import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny")
    generator = HFGenerator(str(model), batch_size=2, engine="generate", system_turn=system_turn)
    generator.tokenizer.chat_template = DEFAULT_SYSTEM_TEMPLATE
    prompt = generator.chat_prompt("What is 2 + 3?")
    assert present in prompt and absent not in prompt
    domain = build_domain("arithmetic")
    question = Question("q", "mul_small", "What is 2 * 3?", "6")
    solver_item = vdata.SolverQuestions(domain, [question], system_turn=system_turn)[0]
    challenger = vdata.ChallengerPrompts(domain, ["mul_small"], ExamplePool({}, run_seed=0, shown=0), system_turn=system_turn)
    for item in (solver_item, challenger[challenger.index_of("mul_small", 0)]):
        assert item["raw_prompt"][:-1] == chat_messages("", system_turn)[:-1]
        assert item["raw_prompt"][-1]["role"] == "user"
