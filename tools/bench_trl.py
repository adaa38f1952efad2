"""`make bench-trl`: one solver GRPO step of the default recipe, coevolve (verl) against Hugging
Face TRL's `GRPOTrainer`, on the same questions, each against the machine's FLOP floor.

Both systems get the same model, 16 questions x 4 answers, 24 new tokens, temperature 0.5,
learning rate 1e-5, no KL term and one optimizer update per step; everything else is each
system's own default. Each runs in its own process, one after the other, so neither competes
for the CPU. The first step of each is a warm-up; the median of the others is reported.

The floor of a step is 8 x N x T FLOP: T tokens (prompts and answers of all sequences) pass
once through the model's N matmul weights to be generated (2NT) and once forward and backward
in the update (6NT), at the machine's measured float32 matmul rate. Anything a system does
beyond that (padding, a second forward for old log-probs, Python) shows as a smaller share.

    python tools/bench_trl.py --json runs/bench/trl.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = 16
GROUP = 4
MAX_NEW_TOKENS = 24
TEMPERATURE = 0.5
LR = 1e-5
QUESTION_SEED = 7  # neither the test split's seed nor the dev split's
# The default recipe's solver step, pinned to the shared settings above.
SOLVER_OVERRIDES = [f"solver.batch_size={QUESTIONS}", f"solver.group_size={GROUP}",
                    f"solver.max_new_tokens={MAX_NEW_TOKENS}", f"solver.temperature={TEMPERATURE}",
                    f"solver.lr={LR}", "solver.kl_coef=0.0"]


def bench_questions(recipe, domain) -> list:
    """The same 16 questions for both systems: the recipe's trained categories, interleaved."""
    categories = tuple(recipe.domain.categories or domain.categories())
    per_category = -(-QUESTIONS // len(categories))
    drawn = domain.heldout(per_category, QUESTION_SEED)
    by_category = [[q for q in drawn if q.category == c] for c in categories]
    interleaved = [q for group in zip(*by_category, strict=True) for q in group]
    if len(interleaved) < QUESTIONS:
        raise SystemExit(f"{recipe.domain.name}: only {len(interleaved)} questions drawn, need {QUESTIONS}")
    return interleaved[:QUESTIONS]


def load(recipe_path: str, overrides: list[str]):
    from coevolve.domains import build_domain
    from coevolve.recipe import load_recipe

    recipe = load_recipe(recipe_path, [*overrides, *SOLVER_OVERRIDES])
    domain = build_domain(recipe.domain.name, recipe.domain.options)
    return recipe, domain, bench_questions(recipe, domain)


def run_coevolve(recipe_path: str, overrides: list[str], steps: int) -> dict:
    """Steps of the solver's verl trainer, built as the loop builds it, on the bench questions."""
    import numpy as np

    from coevolve.backend.verl_backend import VerlBackend
    from coevolve.run.roles import RoleInputs
    from coevolve.selfplay.curriculum import Bandit
    from coevolve.selfplay.examples import ExamplePool
    from coevolve.selfplay.scoring import score_solver_batch

    recipe, domain, questions = load(recipe_path, overrides)
    categories = tuple(dict.fromkeys(q.category for q in questions))
    backend = VerlBackend()
    base_model = backend.prepare_model(recipe)
    backend.start(recipe)
    engine_metrics: list[dict[str, float]] = []
    try:
        with tempfile.TemporaryDirectory() as run_dir:
            role = backend.build_role(RoleInputs(
                role="solver", recipe=recipe, domain=domain, categories=categories,
                examples=ExamplePool({}, run_seed=recipe.seed, shown=0),
                bandit=Bandit(categories, seed=recipe.seed), rng=np.random.default_rng(recipe.seed),
                base_model=base_model, run_dir=Path(run_dir),
                scorer=lambda rollouts: score_solver_batch(domain, rollouts)))
            role.set_questions(questions, [1.0] * len(questions))  # true answers as labels
            role.train(steps, 1, on_step=lambda batch: None, on_metrics=lambda data, step: engine_metrics.append(data))
            role.shutdown()
    finally:
        backend.stop()
    steps_seen = [m for m in engine_metrics if "timing_s/step" in m]
    return {
        "step_seconds": [m["timing_s/step"] for m in steps_seen],
        "generation_seconds": [m.get("timing_s/gen") for m in steps_seen],
        "update_seconds": [m.get("timing_s/update_actor") for m in steps_seen],
        "tokens": [_verl_tokens(m) for m in steps_seen],
    }


def _verl_tokens(metrics: dict[str, float]) -> float:
    """Prompt and answer tokens of all sequences of a step, from verl's length means."""
    sequences = QUESTIONS * GROUP
    return sequences * (metrics["prompt_length/mean"] + metrics["response_length/mean"])


def trl_job(recipe_path: str, overrides: list[str]) -> dict:
    """What the TRL process needs, computed here so that it imports nothing of coevolve: the
    model's directory, each question's chat messages and true answer, the threads."""
    from coevolve.backend.models import prepare_base_model

    recipe, domain, questions = load(recipe_path, overrides)
    return {"model": str(prepare_base_model(recipe)), "threads": recipe.resources.cpu_threads, "seed": recipe.seed,
            "rows": [{"prompt": [{"role": "user", "content": domain.solver_prompt(q)}], "answer": q.answer}
                     for q in questions]}


def run_trl(job: dict, steps: int) -> dict:
    """Steps of TRL's GRPOTrainer on the job's questions, model and the shared sampling settings."""
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    if job["threads"]:
        torch.set_num_threads(job["threads"])

    def reward(completions, answer, **_) -> list[float]:  # the last number is the answer
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        return [float(answer_matches(t, a)) for t, a in zip(texts, answer, strict=True)]

    timer = _StepTimer(TrainerCallback)
    with tempfile.TemporaryDirectory() as out:
        config = GRPOConfig(
            output_dir=out, max_steps=steps, per_device_train_batch_size=QUESTIONS * GROUP,
            gradient_accumulation_steps=1, num_generations=GROUP, max_completion_length=MAX_NEW_TOKENS,
            temperature=TEMPERATURE, learning_rate=LR, beta=0.0, num_iterations=1, use_cpu=True, bf16=False,
            report_to=[], save_strategy="no", logging_steps=1, seed=job["seed"], dataloader_num_workers=0,
            model_init_kwargs={"dtype": torch.float32},
        )
        trainer = GRPOTrainer(model=job["model"], reward_funcs=reward, args=config,
                              train_dataset=Dataset.from_list(job["rows"] * steps), callbacks=[timer.callback])
        trainer.train()
    # TRL logs the running total of non-padding tokens (prompts and completions) it trained on
    totals = [float(e["num_tokens"]) for e in trainer.state.log_history if "num_tokens" in e]
    return {"step_seconds": timer.seconds,
            "tokens": [b - a for a, b in zip([0.0, *totals[:-1]], totals, strict=True)]}


def answer_matches(text: str, answer: str) -> bool:
    """Whether the last number of `text` is `answer`, read as coevolve reads it
    (coevolve/domains/answers.py). That module and the packages it loads (coevolve/__init__.py,
    coevolve/domains/__init__.py, base.py, records.py) import only the standard library, so the
    TRL environment, which lacks coevolve's dependencies, can import it from the checkout."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from coevolve.domains.answers import canonical_number, last_number

    found = last_number(text)
    return found is not None and (canonical_number(found) or found) == answer


class _StepTimer:
    """Wall seconds of each optimizer step (generation included), from the trainer's callbacks."""

    def __init__(self, base: type) -> None:
        self.seconds: list[float] = []
        timer = self

        class Callback(base):
            def on_step_begin(self, args, state, control, **kwargs):
                timer._start = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):
                timer.seconds.append(time.perf_counter() - timer._start)

        self.callback = Callback()
        self._start = 0.0


def floor_rate(model_dir: Path) -> tuple[float, float]:
    """(matmul weights N of the model, the machine's best float32 matmul GFLOP/s)."""
    sys.path.insert(0, str(REPO / "tools"))
    import torch
    from bench_generation import matmul_rate
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    return float(weights), max(matmul_rate().values())


def summarise(system: str, measured: dict, weights: float, gflops: float) -> dict:
    """Median step after the warm-up, its tokens, the floor's seconds and the share reached."""
    steps = measured["step_seconds"][1:] or measured["step_seconds"]
    tokens = measured["tokens"][1:] or measured["tokens"]
    seconds, tokens_per_step = statistics.median(steps), statistics.median(tokens)
    floor = 8 * weights * tokens_per_step / (gflops * 1e9)
    return {"system": system, "step_seconds": seconds, "steps": measured["step_seconds"],
            "tokens_per_step": tokens_per_step, "floor_seconds": floor, "share_of_floor": floor / seconds,
            **{k: v for k, v in measured.items() if k not in ("step_seconds", "tokens")}}


def child(system: str, args: argparse.Namespace, out: Path, job: dict) -> dict:
    """Run one system in its own process; its measurements come back as JSON. TRL runs in its
    own environment (`make bench-trl` builds it): verl patches TRL's classes when TRL is
    importable, and the TRL release measured here no longer has the class verl patches."""
    command = [sys.executable, __file__, "--system", system, "--steps", str(args.steps), "--json", str(out)]
    if system == "trl":
        job_file = out.with_suffix(".job.json")
        job_file.write_text(json.dumps(job))
        command = [str(args.trl_python), __file__, "--system", "trl", "--job", str(job_file),
                   "--steps", str(args.steps), "--json", str(out)]
    else:
        command += ["--recipe", args.recipe, *args.overrides]
    print(f"=== {system}: {' '.join(command)}", flush=True)
    subprocess.run(command, cwd=REPO, check=True)
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(REPO / "recipes" / "arithmetic-cpu.yaml"))
    parser.add_argument("--steps", type=int, default=3, help="steps per system; the first is a warm-up")
    parser.add_argument("--system", choices=("coevolve", "trl"), help="run one system in this process")
    parser.add_argument("--job", type=Path, help="the TRL process's questions and model (--system trl)")
    parser.add_argument("--trl-python", type=Path, default=REPO / ".venv-trl" / "bin" / "python",
                        help="the Python of the environment that has TRL")
    parser.add_argument("--json", type=Path, help="where the results go")
    parser.add_argument("overrides", nargs="*", help="recipe overrides, key=value")
    args = parser.parse_args()
    if args.system == "trl":
        args.json.write_text(json.dumps(run_trl(json.loads(args.job.read_text()), args.steps)))
        return
    if args.system == "coevolve":
        args.json.write_text(json.dumps(run_coevolve(args.recipe, args.overrides, args.steps)))
        return
    if not args.trl_python.is_file():
        raise SystemExit(f"{args.trl_python}: no Python with TRL; `make bench-trl` builds that environment")
    job = trl_job(args.recipe, args.overrides)  # also names the model the floor is computed for
    with tempfile.TemporaryDirectory() as tmp:
        raw = {s: child(s, args, Path(tmp) / f"{s}.json", job) for s in ("trl", "coevolve")}
    weights, gflops = floor_rate(Path(job["model"]))
    rows = [summarise(system, measured, weights, gflops) for system, measured in raw.items()]
    report(rows, weights, gflops, args.json)


def speedup_over_trl(rows: list[dict]) -> float:
    """TRL's step time over coevolve's, whatever the order of the rows."""
    seconds = {r["system"]: r["step_seconds"] for r in rows}
    return seconds["trl"] / seconds["coevolve"]


def report(rows: list[dict], weights: float, gflops: float, path: Path | None) -> None:
    speedup = speedup_over_trl(rows)
    print(f"\nmatmul weights {weights / 1e6:.0f}M, machine {gflops:.0f} GFLOP/s (float32 matmul); "
          f"{QUESTIONS} questions x {GROUP} answers, {MAX_NEW_TOKENS} new tokens, T {TEMPERATURE}")
    print(f"{'system':<10} {'step s':>8} {'tokens':>8} {'floor s':>8} {'of floor':>9}  steps")
    for r in rows:
        print(f"{r['system']:<10} {r['step_seconds']:8.1f} {r['tokens_per_step']:8.0f} {r['floor_seconds']:8.1f} "
              f"{r['share_of_floor']:9.1%}  {', '.join(f'{s:.1f}' for s in r['steps'])}")
    print(f"coevolve's solver step vs TRL's: {speedup:.2f}x faster")
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"systems": rows, "coevolve_speedup_over_trl": speedup,
                                    "matmul_gflops": gflops, "matmul_weights": weights}, indent=2))


if __name__ == "__main__":
    main()
