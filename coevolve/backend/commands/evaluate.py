"""`coevolve eval CHECKPOINT --recipe RECIPE`: any checkpoint on the recipe's held-out sets.

Apart from the in-loop evaluation because a user compares models a run never held at once
(the base model, iteration 1 and 3, a checkpoint from elsewhere): it loads a plain Hugging
Face directory and samples with `HFGenerator` (no verl or Ray), greedy and majority-of-k
with the recipe's vote settings, which shows what sampling adds. A rerun gives the same table
(`eval.seed` picks the questions and seeds the samples; the checkpoint's outputs are
replaced). The checkpoint and the questions are checked before the model is loaded; grading
and the table live in the pure `coevolve.measure.evaluation`.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from coevolve.domains import build_domain
from coevolve.measure.evaluation import (
    CheckpointEval,
    EvalInputError,
    check_checkpoint,
    check_label,
    checkpoint_iteration,
    checkpoint_label,
    grade_checkpoint,
    recipe_heldout,
)
from coevolve.recipe.schema import Recipe
from coevolve.runstate import write_atomically

TENSORBOARD_RUN = "eval_checkpoint"  # runs under <run_dir>/tensorboard/eval_checkpoint/<label>


@dataclass(frozen=True)
class EvalOutputs:
    """Where one evaluation was written."""

    json: Path
    markdown: Path
    tensorboard: Path


def evaluate_checkpoint(recipe: Recipe, checkpoint: Path,
                        label: str | None = None) -> tuple[CheckpointEval, EvalOutputs]:
    """Evaluate `checkpoint` on the recipe's held-out questions and write the table.

    `label` names the outputs (default: from the checkpoint's path, see `checkpoint_label`).
    """
    check_checkpoint(checkpoint)
    run_dir = Path(recipe.run_dir)
    label = check_label(label or checkpoint_label(checkpoint, run_dir))
    domain = build_domain(recipe.domain.name, recipe.domain.options)
    try:
        questions, _ = recipe_heldout(recipe, domain)
        greedy, sampled = _sample(recipe, checkpoint, [domain.solver_prompt(q) for q in questions])
        result = grade_checkpoint(domain, questions, greedy=greedy, sampled=sampled, checkpoint=str(checkpoint),
                                  domain_name=domain.name or recipe.domain.name)
    finally:
        domain.close()
    outputs = _write(result, settings=_settings(recipe), run_dir=run_dir, label=label,
                     step=checkpoint_iteration(checkpoint))
    return result, outputs


def _sample(recipe: Recipe, checkpoint: Path,
            messages: list[str]) -> tuple[list[str], list[list[str]] | None]:
    """One greedy completion per solver prompt, and k sampled ones unless eval.samples is 1."""
    from coevolve.backend.generation.generator import DeviceUnavailable, load_generator
    from coevolve.run.sampling import greedy_params, vote_params

    try:
        generator = load_generator(recipe, checkpoint)
    except DeviceUnavailable as err:
        raise EvalInputError(str(err)) from err
    e, v = recipe.eval, recipe.vote
    print(f"[coevolve] eval {checkpoint}: {len(messages)} held-out questions, greedy", flush=True)
    greedy = generator.generate(messages, greedy_params(e.max_new_tokens),
                              seed=e.seed)
    if e.samples == 1:
        return [g[0] for g in greedy], None
    print(f"[coevolve] eval {checkpoint}: majority of {e.samples} samples "
          f"(T={v.temperature}, top_k={v.top_k}, top_p={v.top_p})", flush=True)
    params = replace(vote_params(recipe, e.samples), max_new_tokens=e.max_new_tokens)
    return [g[0] for g in greedy], generator.generate(messages, params, seed=e.seed)


def _settings(recipe: Recipe) -> dict[str, Any]:
    """What the numbers depend on besides the checkpoint, saved next to them."""
    v = recipe.vote
    return {"recipe": recipe.name, "domain": recipe.domain.name, "eval": asdict(recipe.eval),
            "majority_sampling": {"temperature": v.temperature, "top_k": v.top_k, "top_p": v.top_p},
            "device": recipe.resources.device, "dtype": recipe.model.dtype}


def _write(result: CheckpointEval, *, settings: dict[str, Any], run_dir: Path, label: str,
           step: int) -> EvalOutputs:
    """The table as JSON and markdown under <run_dir>/eval/checkpoints/, and as TensorBoard
    scalars and text in a run of its own (an earlier evaluation of `label` is replaced)."""
    from coevolve.run.tracking import Tracker

    folder = run_dir / "eval" / "checkpoints"
    outputs = EvalOutputs(folder / f"{label}.json", folder / f"{label}.md",
                          run_dir / "tensorboard" / TENSORBOARD_RUN / label)
    write_atomically(outputs.json, json.dumps({"label": label, "settings": settings, **result.to_json()},
                                              indent=2))
    write_atomically(outputs.markdown, f"# {label}\n\ncheckpoint: `{result.checkpoint}`\n\n"
                                       f"settings: `{json.dumps(settings)}`\n\n{result.markdown()}")
    shutil.rmtree(outputs.tensorboard, ignore_errors=True)
    tracker = Tracker(run_dir, name=f"{TENSORBOARD_RUN}/{label}")
    try:
        tracker.scalars(result.metrics(TENSORBOARD_RUN), step)
        tracker.text(f"{TENSORBOARD_RUN}/table", result.table(), result.header(), step)
    finally:
        tracker.close()
    return outputs
