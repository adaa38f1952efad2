"""Build each role's verl trainer for a co-evolution run (the glue between loop and verl)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from coevolve.backend import data as vdata
from coevolve.backend import trainer as vtrainer
from coevolve.backend.verl_config import compose, role_settings
from coevolve.informative import informative_weights
from coevolve.records import Question
from coevolve.recipe import RecipeError

if TYPE_CHECKING:
    from coevolve.loop import CoEvolution


def build_role(run: "CoEvolution", role: str, base_model: str) -> vtrainer.RoleTrainer:
    """A live verl trainer for `role` starting from `base_model`, its scorer registered."""
    from verl.utils import hf_tokenizer

    recipe = run.recipe
    config = compose(role_settings(recipe, role, base_model, run.run_dir))
    tokenizer = hf_tokenizer(base_model)
    if role == "challenger":
        dataset = vdata.ChallengerPrompts(run.domain, run.categories, run.seeds,
                                          seeds_per_prompt=recipe.challenger.seeds_per_prompt)
        sampler = vdata.CurriculumSampler(run.bandit, vdata.challenger_picker(dataset),
                                          batch_size=recipe.challenger.batch_size)
        vtrainer.SCORERS[role] = run.score_challenger_batch
    else:
        # The solver's real dataset exists only after the first dataset phase; until then it
        # trains on nothing, and verl needs some dataset to build its loaders.
        dataset = _placeholder(run)
        sampler = vdata.CurriculumSampler(run.bandit, lambda category: 0, allowed=run.categories[:1],
                                          batch_size=recipe.solver.batch_size)
        vtrainer.SCORERS[role] = run.score_solver_batch
    val_dataset = _placeholder(run)  # verl insists on one; coevolve evaluates by itself
    return vtrainer.RoleTrainer(role, config, dataset, val_dataset, sampler, tokenizer,
                                recipe.resources.gpus_per_node, recipe.resources.nnodes)


def solver_data(run: "CoEvolution", questions, agreements):
    """The solver's dataset for a phase and its curriculum sampler (categories present only).

    With `solver.question_sampling: informative`, questions are drawn within their category in
    proportion to their chance of an informative GRPO group (coevolve/informative.py).
    """
    dataset = vdata.SolverQuestions(run.domain, questions)
    if run.recipe.solver.question_sampling == "informative":
        if None in agreements:
            raise RecipeError(
                "solver.question_sampling = 'informative' needs each question's vote agreement, "
                "which this run's dataset file predates; resume with solver.question_sampling=uniform")
        weights = informative_weights(agreements, run.recipe.solver.group_size)
        picker = vdata.weighted_picker(dataset, weights, run.rng)
    else:
        picker = vdata.solver_picker(dataset, run.rng)
    sampler = vdata.CurriculumSampler(run.bandit, picker,
                                      allowed=sorted(dataset.by_category),
                                      batch_size=run.recipe.solver.batch_size)
    return dataset, sampler


def _placeholder(run: "CoEvolution") -> vdata.SolverQuestions:
    question = Question("placeholder", run.categories[0], "placeholder", "placeholder")
    return vdata.SolverQuestions(run.domain, [question], oracle=False)
