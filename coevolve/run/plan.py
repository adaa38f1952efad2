"""What one iteration of a recipe costs, and where it runs: the dry run's numbers.

Pure arithmetic on the recipe, to size a run (and a cluster) before starting it. Token counts
are upper bounds: every sequence at its `max_new_tokens`, every challenger question voted on.
Each role owns `nnodes x gpus_per_node` GPUs, one FSDP worker and one vLLM server on each;
the two pools never share a GPU (docs/scaling.md). GPU-hours count generation only, at an
assumed decode throughput (`DECODE_TOKENS_PER_GPU_S`), with every GPU of both pools held.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from coevolve.recipe.schema import Recipe


@dataclass(frozen=True)
class Generation:
    """One kind of generation in an iteration."""

    what: str
    role: str  # whose weights generate
    sequences: int
    max_new_tokens: int
    trained: bool  # whether these sequences also go through a GRPO update
    phase: str  # the phase of the run that generates them (runstate.PHASES)

    @property
    def max_tokens(self) -> int:
        return self.sequences * self.max_new_tokens


def iteration_budget(recipe: Recipe, heldout_questions: int,
                     heldout_vote_questions: int = 0) -> list[Generation]:
    """Every generation of one iteration, in the order the phases run.

    `heldout_vote_questions`: held-out questions the solver also votes on in an evaluation
    (`eval.vote_per_category` of each category). The label-flip check of the dataset phase
    is counted in every iteration, though the first has no previous labels to check.
    """
    c, s, v, d = recipe.challenger, recipe.solver, recipe.vote, recipe.dataset
    challenger_rollouts = c.steps * c.batch_size * c.group_size
    flip_checks = min(d.flip_check_questions, d.questions)
    return [
        Generation("challenger rollouts", "challenger", challenger_rollouts, c.max_new_tokens, True,
                   "challenger"),
        Generation("solver votes for challenger rewards", "solver", challenger_rollouts * v.samples,
                   v.max_new_tokens, False, "challenger"),
        Generation("dataset questions", "challenger", d.questions, c.max_new_tokens, False, "dataset"),
        Generation("solver votes for the dataset", "solver", d.questions * v.samples, v.max_new_tokens, False,
                   "dataset"),
        Generation("solver votes on last iteration's labels (flips)", "solver", flip_checks * v.samples,
                   v.max_new_tokens, False, "dataset"),
        Generation("solver rollouts", "solver", s.steps * s.batch_size * s.group_size, s.max_new_tokens, True,
                   "solver"),
        Generation("held-out evaluation (greedy)", "solver", heldout_questions, recipe.eval.max_new_tokens,
                   False, "eval"),
        Generation("held-out votes (label accuracy estimate)", "solver", heldout_vote_questions * v.samples,
                   v.max_new_tokens, False, "eval"),
    ]


# Assumed vLLM decode throughput of one GPU for a ~4B model at large batch (H100, bf16),
# in generated tokens per second. An assumption to be replaced by a measurement; see
# docs/scaling.md for where it comes from and how the estimate scales with it.
DECODE_TOKENS_PER_GPU_S = 10_000


@dataclass(frozen=True)
class ResourcePlan:
    """Where each role's workers and the samplers are placed."""

    device: str
    rollout: str
    nnodes: int
    gpus_per_node_per_role: int
    total_gpus: int
    ray: str
    challenger: str
    solver: str
    challenger_sampler: str
    solver_sampler: str


def resource_plan(recipe: Recipe) -> ResourcePlan:
    r = recipe.resources
    unit = "logical GPU slot" if r.device == "cpu" else "GPU"
    per_role = r.nnodes * r.gpus_per_node
    if r.device == "cuda":  # verl starts one rollout server per GPU at tensor parallel 1
        rollout = "1 vLLM server (tensor parallel 1), asleep while the actor updates"
        servers = f"{per_role} vLLM server(s)"
    else:
        rollout, servers = f"the {r.rollout} rollout", f"{r.rollout} rollout server(s)"

    def pool(role: str) -> str:
        return (f"pool '{role}_pool', {per_role} {unit}(s) of its own ({r.nnodes} node(s) x "
                f"{r.gpus_per_node}); per {unit}: 1 FSDP worker (actor + reference, sharded "
                f"{per_role}-way) + {rollout}")

    return ResourcePlan(
        device=r.device, rollout=r.rollout, nnodes=r.nnodes, gpus_per_node_per_role=r.gpus_per_node,
        total_gpus=2 * per_role,
        ray=f"connect to {r.ray_address}" if r.ray_address else "start a local Ray instance",
        challenger=pool("challenger"),
        solver=pool("solver"),
        challenger_sampler=f"challenger_pool's {servers}: the dataset questions",
        solver_sampler=(f"solver_pool's {servers}: votes for the challenger's rewards and for "
                        "the dataset, held-out evaluation"),
    )


def generation_hours(recipe: Recipe, budget: list[Generation],
                     tokens_per_gpu_s: float = DECODE_TOKENS_PER_GPU_S) -> tuple[float, float]:
    """(wall-clock hours, GPU-hours) of one iteration's generation at `tokens_per_gpu_s`.

    Each generation runs on the GPUs of the role that generates; both pools are held for
    the whole iteration, so GPU-hours = wall hours x total GPUs.
    """
    per_role = recipe.resources.nnodes * recipe.resources.gpus_per_node
    wall_s = sum(g.max_tokens / (tokens_per_gpu_s * per_role) for g in budget)
    return wall_s / 3600, wall_s / 3600 * 2 * per_role


def plan_dict(recipe: Recipe, heldout_questions: int, heldout_vote_questions: int = 0,
              tokens_per_gpu_s: float = DECODE_TOKENS_PER_GPU_S) -> dict:
    budget = iteration_budget(recipe, heldout_questions, heldout_vote_questions)
    return {
        "recipe": recipe.name,
        "iterations": recipe.iterations,
        "resources": asdict(resource_plan(recipe)),
        "iteration_budget": [asdict(g) | {"max_tokens": g.max_tokens} for g in budget],
        "iteration_max_generated_tokens": sum(g.max_tokens for g in budget),
        "iteration_trained_sequences": sum(g.sequences for g in budget if g.trained),
    } | _cost(recipe, budget, tokens_per_gpu_s)


def _cost(recipe: Recipe, budget: list[Generation], tokens_per_gpu_s: float) -> dict:
    """The generation GPU-hours of one iteration, on GPU recipes only (CPU slots are not GPUs)."""
    if recipe.resources.device != "cuda":
        return {}
    wall_h, gpu_h = generation_hours(recipe, budget, tokens_per_gpu_s)
    return {"assumed_decode_tokens_per_gpu_s": tokens_per_gpu_s,
            "iteration_generation_wall_hours": round(wall_h, 3),
            "iteration_generation_gpu_hours": round(gpu_h, 2)}


def format_plan(plan: dict) -> str:
    """A plain-text table of the plan for the terminal."""
    res = plan["resources"]
    unit = "logical GPU slot" if res["device"] == "cpu" else "GPU"
    lines = [f"recipe {plan['recipe']}: {plan['iterations']} iteration(s) on {res['device']} "
             f"({res['rollout']} rollout), {res['total_gpus']} {unit}(s) in all; {res['ray']}",
             f"  challenger: {res['challenger']}", f"  solver:     {res['solver']}",
             f"  challenger sampler: {res['challenger_sampler']}",
             f"  solver sampler: {res['solver_sampler']}", "", "one iteration (upper bounds):",
             f"  {'generation':40} {'role':10} {'sequences':>10} {'x tokens':>9} {'max tokens':>12}"]
    for g in plan["iteration_budget"]:
        lines.append(f"  {g['what']:40} {g['role']:10} {g['sequences']:>10,} {g['max_new_tokens']:>9} "
                     f"{g['max_tokens']:>12,}")
    lines.append(f"  {'total':40} {'':10} {'':>10} {'':>9} {plan['iteration_max_generated_tokens']:>12,}")
    if "iteration_generation_gpu_hours" in plan:
        lines.append(f"  generation: {plan['iteration_generation_wall_hours']:.2f} h wall x {res['total_gpus']} "
                     f"GPUs = {plan['iteration_generation_gpu_hours']:.1f} GPU-hours per iteration, assuming "
                     f"{plan['assumed_decode_tokens_per_gpu_s']:,} generated tokens/s per GPU "
                     "(docs/scaling.md)")
    return "\n".join(lines)
