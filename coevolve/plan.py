"""What one iteration of a recipe costs, and where it runs: the dry run's numbers.

Pure arithmetic on the recipe, so a user can size a run (and a cluster) before starting it.
Token counts are upper bounds: every generated sequence is counted at its `max_new_tokens`,
and every challenger question is assumed valid (so voted on).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from coevolve.schema import Recipe


@dataclass(frozen=True)
class Generation:
    """One kind of generation in an iteration."""

    what: str
    role: str  # whose weights generate
    sequences: int
    max_new_tokens: int
    trained: bool  # whether these sequences also go through a GRPO update

    @property
    def max_tokens(self) -> int:
        return self.sequences * self.max_new_tokens


def iteration_budget(recipe: Recipe, heldout_questions: int) -> list[Generation]:
    """Every generation of one iteration, in the order the phases run."""
    c, s, v, d = recipe.challenger, recipe.solver, recipe.vote, recipe.dataset
    challenger_rollouts = c.steps * c.batch_size * c.group_size
    return [
        Generation("challenger rollouts", "challenger", challenger_rollouts, c.max_new_tokens, True),
        Generation("solver votes for challenger rewards", "solver", challenger_rollouts * v.samples,
                   v.max_new_tokens, False),
        Generation("dataset questions", "challenger", d.questions, c.max_new_tokens, False),
        Generation("solver votes for the dataset", "solver", d.questions * v.samples, v.max_new_tokens, False),
        Generation("solver rollouts", "solver", s.steps * s.batch_size * s.group_size, s.max_new_tokens, True),
        Generation("held-out evaluation (greedy)", "solver", heldout_questions, recipe.eval.max_new_tokens,
                   False),
    ]


@dataclass(frozen=True)
class ResourcePlan:
    """Where each role's workers and the solver sampler are placed."""

    device: str
    rollout: str
    nnodes: int
    gpus_per_node_per_role: int
    total_gpus: int
    ray: str
    challenger: str
    solver: str
    solver_sampler: str


def resource_plan(recipe: Recipe) -> ResourcePlan:
    r = recipe.resources
    unit = "logical GPU slot" if r.device == "cpu" else "GPU"
    per_role = r.nnodes * r.gpus_per_node
    pool = f"{per_role} {unit}(s): FSDP actor + reference, {r.rollout} rollout colocated"
    return ResourcePlan(
        device=r.device, rollout=r.rollout, nnodes=r.nnodes, gpus_per_node_per_role=r.gpus_per_node,
        total_gpus=2 * per_role,
        ray=f"connect to {r.ray_address}" if r.ray_address else "start a local Ray instance",
        challenger=f"pool 'challenger_pool': {pool}",
        solver=f"pool 'solver_pool': {pool}",
        solver_sampler="the solver's own rollout servers (votes and evaluation reuse its weights)",
    )


def plan_dict(recipe: Recipe, heldout_questions: int) -> dict:
    budget = iteration_budget(recipe, heldout_questions)
    return {
        "recipe": recipe.name,
        "iterations": recipe.iterations,
        "resources": asdict(resource_plan(recipe)),
        "iteration_budget": [asdict(g) | {"max_tokens": g.max_tokens} for g in budget],
        "iteration_max_generated_tokens": sum(g.max_tokens for g in budget),
        "iteration_trained_sequences": sum(g.sequences for g in budget if g.trained),
    }


def format_plan(plan: dict) -> str:
    """A plain-text table of the plan for the terminal."""
    res = plan["resources"]
    unit = "logical GPU slot" if res["device"] == "cpu" else "GPU"
    lines = [f"recipe {plan['recipe']}: {plan['iterations']} iteration(s) on {res['device']} "
             f"({res['rollout']} rollout), {res['total_gpus']} {unit}(s) in all; {res['ray']}",
             f"  challenger: {res['challenger']}", f"  solver:     {res['solver']}",
             f"  solver sampler: {res['solver_sampler']}", "", "one iteration (upper bounds):",
             f"  {'generation':40} {'role':10} {'sequences':>10} {'x tokens':>9} {'max tokens':>12}"]
    for g in plan["iteration_budget"]:
        lines.append(f"  {g['what']:40} {g['role']:10} {g['sequences']:>10,} {g['max_new_tokens']:>9} "
                     f"{g['max_tokens']:>12,}")
    lines.append(f"  {'total':40} {'':10} {'':>10} {'':>9} {plan['iteration_max_generated_tokens']:>12,}")
    return "\n".join(lines)
