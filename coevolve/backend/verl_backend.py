"""The verl backend: Ray, and each role as a verl GRPO trainer (the loop's `roles.Backend`).

The CLI hands a `VerlBackend` to the loop; the loop builds both roles through it from
explicit inputs (`roles.RoleInputs`) and never imports this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from coevolve.backend import ray_session
from coevolve.backend.models import prepare_base_model
from coevolve.measure.memory import available_bytes
from coevolve.recipe.schema import Recipe
from coevolve.run import preflight
from coevolve.run.roles import RoleInputs

if TYPE_CHECKING:
    from coevolve.backend.verl_role import VerlRole


class VerlBackend:
    """Ray started (or joined) for the run; roles built as live verl trainers."""

    def prepare_model(self, recipe: Recipe) -> str:
        return prepare_base_model(recipe)

    def check_memory(self, recipe: Recipe, model: str, prompts: dict[str, str]) -> str | None:
        """On the CPU, the estimated peak (coevolve/run/preflight.py) against MemAvailable; a GPU
        run's memory is the devices', which verl and vLLM size themselves."""
        if recipe.resources.device != "cpu":
            return None
        shape = preflight.model_shape(model)
        tokens = preflight.prompt_tokens(prompts, recipe.model.system_turn)
        return preflight.check_fits(recipe, shape, tokens, available_bytes())

    def start(self, recipe: Recipe) -> None:
        ray_session.start_ray(recipe)

    def build_role(self, inputs: RoleInputs) -> VerlRole:
        from coevolve.backend.verl_role import VerlRole  # verl: only once Ray's environment is set

        return VerlRole(inputs)

    def stop(self) -> None:
        ray_session.stop_ray()

    def describe_failure(self, err: BaseException) -> str | None:
        return ray_session.worker_failure(err)
