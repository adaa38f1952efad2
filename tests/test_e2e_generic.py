"""A domain the code has never seen, end to end on the CPU: recipes/capitals-cpu.yaml.

The recipe file configures the `generic` domain in YAML alone, and it is used as written,
seed and held-out files included. The command line only shrinks the run (test_e2e's
`overrides`, without its toy domain) and loosens what a tiny random model's garbage must
look like: the whole reply is the question and its last visible character the answer, so
votes split and every phase has data.
"""

import json

import pytest

from coevolve.runstate import run_phases
from helpers.e2e import REPO, overrides, start, tensorboard_tags, wait_for

pytestmark = pytest.mark.slow

RECIPE = REPO / "recipes/capitals-cpu.yaml"
CATEGORIES = ("europe", "asia", "africa", "americas")
LOOSE = [
    r"domain.options.question_regex=(?s)(.+)",  # the whole reply
    r"domain.options.answer_regex=(\S)\s*$",  # the last visible character
    # the recipe's 3 seed questions make challenger prompts of ~200 tiny-tokenizer tokens
    "challenger.max_prompt_tokens=256", "solver.max_prompt_tokens=128",
]


def test_a_yaml_only_domain_trains_and_evaluates_per_category(tmp_path):
    from helpers.tiny_model import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny")
    run_dir = tmp_path / "run"
    settings = [s for s in overrides(model, run_dir) if not s.startswith("domain.")] + LOOSE
    log = tmp_path / "train.log"
    process = start(model, run_dir, log, recipe=RECIPE, settings=settings)
    wait_for(lambda: process.poll() is not None, process, 600, log)
    assert process.returncode == 0, log.read_text()[-4000:]

    state = json.loads((run_dir / "state.json").read_text())
    assert state["completed"] == [phase.key for phase in run_phases(1)]
    saved = (run_dir / "recipe.yaml").read_text()
    assert "name: generic" in saved and str(REPO / "recipes/data/capitals/heldout.jsonl") in saved
    dataset = [json.loads(line) for line in
               (run_dir / "data" / "iter_001" / "solver_dataset.jsonl").read_text().splitlines()]
    assert dataset and {row["category"] for row in dataset} <= set(CATEGORIES)

    for name in ("0_eval_base", "1_eval"):
        result = json.loads((run_dir / "eval" / f"{name}.json").read_text())
        assert result["total"] == {c: 2 for c in CATEGORIES}, result  # eval.per_category=2
    scalars, _ = tensorboard_tags(run_dir)
    for tag in ["eval/accuracy", *(f"eval/accuracy/{c}" for c in CATEGORIES)]:
        assert len(scalars.get(tag, [])) == 2, (tag, sorted(scalars))  # before and after

