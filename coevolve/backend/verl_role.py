"""A role as a live verl GRPO trainer, with the dataset and curriculum sampler of its role.

Imported by `VerlBackend.build_role` only, after Ray is started: importing verl needs the
environment `ray_session.start_ray` sets (the CPU platform plugin is loaded at verl's import).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from coevolve.backend import data as vdata
from coevolve.backend import verl_trainer as vtrainer
from coevolve.backend.verl_config import compose, role_settings
from coevolve.records import Question
from coevolve.run.roles import RoleInputs
from coevolve.runstate import write_atomically
from coevolve.selfplay.informative import informative_weights


class VerlRole(vtrainer.VerlTrainer):
    """A role's verl trainer with the dataset and curriculum sampler of its role."""

    def __init__(self, inputs: RoleInputs) -> None:
        from verl.utils import hf_tokenizer

        self.inputs = inputs
        recipe, role = inputs.recipe, inputs.role
        config = compose(role_settings(recipe, role, inputs.base_model, inputs.run_dir))
        if role == "challenger":
            dataset = vdata.ChallengerPrompts(inputs.domain, inputs.categories, inputs.examples,
                                              system_turn=recipe.model.system_turn)
            sampler = vdata.CurriculumSampler(inputs.bandit, vdata.challenger_picker(dataset),
                                              batch_size=recipe.challenger.batch_size)
        else:
            # The solver's real questions exist only after the first dataset phase; until then it
            # trains on nothing, and verl needs some dataset to build its loaders.
            dataset = self._placeholder()
            sampler = vdata.CurriculumSampler(inputs.bandit, lambda category: 0, allowed=inputs.categories[:1],
                                              batch_size=recipe.solver.batch_size)
        super().__init__(role, config, dataset=dataset, val_dataset=self._placeholder(), sampler=sampler,
                         tokenizer=hf_tokenizer(inputs.base_model), gpus_per_node=recipe.resources.gpus_per_node,
                         nnodes=recipe.resources.nnodes, scorer=inputs.scorer, system_turn=recipe.model.system_turn)
        self._record_placement()

    def set_questions(self, questions: Sequence[Question], agreements: Sequence[float]) -> None:
        """The solver's dataset for a phase and its curriculum sampler (categories present only).

        With `solver.question_sampling: informative`, questions are drawn within their category in
        proportion to their chance of an informative GRPO group (coevolve/selfplay/informative.py).
        """
        i = self.inputs
        dataset = vdata.SolverQuestions(i.domain, list(questions), system_turn=i.recipe.model.system_turn)
        if i.recipe.solver.question_sampling == "informative":
            weights = informative_weights(list(agreements), i.recipe.solver.group_size)
            picker = vdata.weighted_picker(dataset, weights, i.rng)
        else:
            picker = vdata.solver_picker(dataset, i.rng)
        sampler = vdata.CurriculumSampler(i.bandit, picker, allowed=sorted(dataset.by_category),
                                          batch_size=i.recipe.solver.batch_size)
        self.set_data(dataset, sampler)

    def _record_placement(self) -> None:
        """Where the role's workers run: `<run_dir>/logs/placement_<role>.json` and the log."""
        where = self.worker_processes()
        nodes = [node for node, _ in where]
        path = self.inputs.run_dir / "logs" / f"placement_{self.role}.json"
        write_atomically(path, json.dumps({"role": self.role, "worker_nodes": nodes,
                                           "worker_pids": [pid for _, pid in where]}, indent=1))
        print(f"[coevolve] {self.role}: {len(nodes)} trainer worker(s) on {len(set(nodes))} Ray node(s): "
              f"{', '.join(n[:12] for n in nodes)}", flush=True)

    def _placeholder(self) -> vdata.SolverQuestions:
        question = Question("placeholder", self.inputs.categories[0], "placeholder", "placeholder")
        return vdata.SolverQuestions(self.inputs.domain, [question], oracle=False,
                                     system_turn=self.inputs.recipe.model.system_turn)
