"""The co-evolution run: phases in order, each saved before the next starts.

Both roles start from one base model, each a `roles.RoleTrainer` built by the backend the CLI
hands in (this module never imports it). Per iteration the challenger trains against the
frozen solver's votes, then writes the solver's dataset, labelled by the solver's majority
vote; the solver trains on it and is evaluated on held-out questions with true answers. A
bandit curriculum per role picks its prompts' categories; the solver's also picks the dataset's,
so the challenger's steps never move the solver's category mix. After every phase the
run state is committed atomically (`runstate.py`); a rerun resumes at the first phase not
committed, and TensorBoard hides what the killed phase had logged.
"""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from coevolve.domains import build_domain
from coevolve.domains.base import Domain
from coevolve.measure.datasets import DatasetSummary, summarise
from coevolve.measure.evaluation import recipe_heldout, score_answers
from coevolve.measure.label_quality import WarnOncePerPhase, heldout_vote_quality, label_flip_rate, label_warning
from coevolve.measure.memory import GIB, MemorySampler, Peaks, top_processes
from coevolve.recipe.diff import describe, recipe_differences
from coevolve.recipe.load import RecipeError, recipe_to_yaml
from coevolve.recipe.schema import Recipe
from coevolve.records import Question, Rollout, Vote
from coevolve.run.console import Console
from coevolve.run.dashboard import LAYOUT, VERL_PREFIX
from coevolve.run.preflight import typical_prompts
from coevolve.run.progress import Progress, bar_numbers, clock, eta_for, phase_kind
from coevolve.run.roles import ROLES, Backend, RoleInputs, RoleTrainer, StepBatch
from coevolve.run.sampling import SamplingParams, greedy_params, vote_params
from coevolve.runstate import (
    BASE_EVAL,
    Phase,
    RunDirError,
    RunState,
    check_resumable,
    check_state_paths,
    load_dataset,
    load_state,
    run_phases,
    save_dataset,
    save_state,
    stale_checkpoints,
    write_atomically,
    write_manifest,
)
from coevolve.selfplay.adaptive import AdaptiveVoting
from coevolve.selfplay.curriculum import Bandit, arm_rewards
from coevolve.selfplay.examples import ExamplePool
from coevolve.selfplay.filters import TextFilter, in_band
from coevolve.selfplay.scoring import (
    CHALLENGER_ROWS,
    SOLVER_ROWS,
    ChallengerScoring,
    ScoredBatch,
    challenger_batch,
    score_challenger_items,
    score_solver_batch,
)
from coevolve.selfplay.steps import (
    ChallengerRewardSettings,
    answer_groups,
    build_solver_dataset,
    challenger_message,
    parse_questions,
    votes,
)
from coevolve.selfplay.vote import agrees
from coevolve.stats import mean_or_none


class CoEvolution:
    """Runs (or resumes) the recipe's plan in its run directory."""

    def __init__(self, recipe: Recipe, backend: Backend, console: Console | None = None) -> None:
        self.recipe = recipe
        self.backend = backend
        self.console = console or Console()
        self.run_dir = Path(recipe.run_dir)
        self.domain: Domain = build_domain(recipe.domain.name, recipe.domain.options)
        self.categories = tuple(recipe.domain.categories or self.domain.categories())
        # The held-out test questions, and those the solver also votes on in every evaluation.
        self.heldout, self.heldout_voted = recipe_heldout(recipe, self.domain)
        # The dev split, scored after every iteration to choose the final solver (never the test's).
        keep = recipe.eval.keep_best_on_dev and recipe.eval.dev_per_category > 0
        self.dev = recipe_heldout(recipe, self.domain, split="dev")[0] if keep else []
        c = recipe.challenger
        seeds = {cat: self.domain.seed_questions(cat, c.example_pool, recipe.seed)
                 for cat in self.categories} if c.seeds_per_prompt else {}
        self.examples = ExamplePool(seeds, recipe.seed, c.seeds_per_prompt, c.own_examples)
        self._seed_texts = [q.text for pool in seeds.values() for q in pool]
        self.text_filter = TextFilter(recipe.dataset.min_words, recipe.dataset.max_words,
                                      tuple(recipe.dataset.blacklist), recipe.dataset.max_rouge_l)
        self.bandits = {role: Bandit(self.categories, alpha=recipe.curriculum.alpha,
                                     temperature=recipe.curriculum.temperature,
                                     seed=recipe.seed + index, initial_q=recipe.curriculum.initial_q)
                        for index, role in enumerate(ROLES)}
        self.rng = np.random.default_rng(recipe.seed)
        self.adaptive = adaptive_voting(recipe)
        self.state: RunState | None = None
        self._phase_key = ""
        self._serving: set[str] = set()
        self.roles: dict[str, RoleTrainer] = {}
        self.tracker = None
        self._phase_values: dict[str, list[float]] = {}  # metric -> values logged in this phase
        self.memory: MemorySampler | None = None  # the run's process tree, sampled every 5 s
        self._memory_log: dict[str, dict] = {}  # window -> peaks, in <run_dir>/logs/memory.json
        self._label_warnings = WarnOncePerPhase()
        self.progress: Progress | None = None
        self._phases = {"challenger": self._phase_challenger, "dataset": self._phase_dataset,
                        "solver": self._phase_solver, "eval": self._phase_eval, BASE_EVAL: self._phase_eval}

    # --- the run ---------------------------------------------------------------------------

    def run(self) -> RunState:
        from coevolve.run.tracking import Tracker

        started = time.monotonic()
        base_model = self.backend.prepare_model(self.recipe)
        self.state = self._open_run_dir(base_model)
        memory_log = self.run_dir / "logs" / "memory.json"  # a resumed run keeps the earlier windows
        self._memory_log = json.loads(memory_log.read_text()) if memory_log.is_file() else {}
        pending = self.state.pending(run_phases(self.recipe.iterations))
        if not pending:
            self.console.say(f"{self.run_dir}: every phase is already done")
            if self.state.kept_iteration is None:  # stopped between the last phase and the choice
                self._keep_final_solver()
            return self.state
        check_resumable(self.state)  # the checkpoints it names, before anything starts
        warning = self.backend.check_memory(self.recipe, base_model,
                                            typical_prompts(self.recipe, self.domain, self.categories))
        if warning:
            self.console.warn(warning)
        eta = eta_for(self.recipe, pending, len(self.heldout), len(self.heldout_voted))
        self.progress = Progress(self.console, eta)
        self.console.say(f"{len(pending)} phases to run; starting Ray and both trainers "
                         f"(ETA {self.progress.run_eta()})")
        self.tracker = Tracker(self.run_dir, purge_step=self.state.global_step + 1)
        self.tracker.dashboard(LAYOUT)
        self.memory = MemorySampler().start()
        try:
            self.backend.start(self.recipe)
            _stop_signals.clear()  # this run's signals only
            signal.signal(signal.SIGTERM, _stop)  # after the backend's (Ray sets its own)
            self._start_roles(base_model)
            startup = time.monotonic() - started
            self._add_seconds("startup", startup)
            self._log_memory("startup", self.memory.start_window(), self.state.global_step)
            eta.finish_startup(startup)
            self.console.say(f"started in {clock(startup)}")
            for phase in pending:
                self._run_phase(phase)
            self._keep_final_solver()
        finally:
            self._log_memory("run", self.memory.stop(), self.state.global_step)
            for trainer in self.roles.values():
                trainer.shutdown()
            self.backend.stop()
            self.tracker.close()
            self.domain.close()
        self._print_report()
        return self.state

    def _keep_final_solver(self) -> None:
        """The run's final solver: the best on the dev split (eval.keep_best_on_dev), else the last."""
        if self.recipe.eval.keep_best_on_dev and self.dev:
            scores = dev_scores(self.state.metrics)
            kept = best_on_dev(scores)
            others = ", ".join(f"{'base' if i == 0 else i} {a:.3f}" for i, a in sorted(scores.items()))
            why = f"best on the dev split ({others})"
        else:
            kept, why = self.recipe.iterations, ("the last iteration (eval.keep_best_on_dev is false)"
                                                 if not self.recipe.eval.keep_best_on_dev else
                                                 "the last iteration (no dev split: eval.dev_per_category is 0)")
        self.state.kept_iteration = kept
        save_state(self.state, self.run_dir)
        path = self.run_dir / "checkpoints" / f"iter_{kept:03d}" / "solver" if kept else "the base model"
        self.console.say(f"final solver: {'base model' if kept == 0 else f'iteration {kept}'}, {why}: {path}")

    def _print_report(self) -> None:
        """The report's summary on the console, and report.md / report.png in the run."""
        from coevolve.measure.report import run_table, summary, write_report

        report, md, png = write_report(self.run_dir, trust_recipe=True)  # this run's own recipe
        self.console.say(f"{summary(report)}\n{run_table(report)}\n{where(self.run_dir, md, png)}")

    def _run_phase(self, phase: Phase) -> None:
        self._phase_key = phase.key
        self._phase_values = {}
        self.memory.start_window()
        start = time.monotonic()
        total, unit = self._phase_size(phase)
        if total == 0:  # challenger.steps = 0: the untrained base challenger
            self.console.say(f"iteration {phase.iteration} {phase.name}: no training steps "
                             f"({phase.name}.steps = 0), the untrained policy is kept")
        with self.progress.phase(phase, total, unit) if total else nullcontext():
            step = self._phases[phase.name](phase)
        seconds = time.monotonic() - start
        self._log_memory(phase.key, self.memory.start_window(), step)
        self.state.global_step = step
        self.state.metrics[phase.key] = {tag: float(np.mean(values))
                                         for tag, values in self._phase_values.items() if values}
        self.state.completed.append(phase.key)
        self.state.phase_seconds[phase.key] = round(seconds, 2)
        self.state.bandits = {role: bandit.state_dict() for role, bandit in self.bandits.items()}
        self.state.examples = self.examples.state_dict()
        self.state.rng = self.rng.bit_generator.state
        parts = {f"time/{phase.name}_{key.partition(':')[2]}_seconds": value
                 for key, value in self.state.part_seconds.items() if key.startswith(f"{phase.key}:")}
        self.tracker.scalars({f"time/{phase.name}_seconds": seconds, **parts}, step)
        self.tracker.flush()
        try:
            save_state(self.state, self.run_dir)
        except OSError as err:
            raise RunDirError(f"could not commit phase {phase.key} to {self.run_dir / 'state.json'} "
                              f"({err.strerror or err}); the state of the phase before is intact: free space "
                              "and rerun the same command") from err
        for stale in stale_checkpoints(self.state, self.run_dir):  # only after the commit
            shutil.rmtree(stale)
        self.progress.finish(phase, seconds)
        numbers = ", ".join(f"{name} {value}" for name, value in
                            bar_numbers(phase_kind(phase), self.state.metrics[phase.key]).items())
        self.console.say(f"iteration {phase.iteration} {phase.name} done in {clock(seconds)}"
                         f"{': ' + numbers if numbers else ''} | run ETA {self.progress.run_eta()}")

    def _log_memory(self, window: str, peaks: Peaks, step: int) -> None:
        """A window's peaks (a phase key, "startup" or "run"): beside the phase's seconds in
        TensorBoard, and with each process's in <run_dir>/logs/memory.json."""
        name = window.rpartition("/")[2]
        metrics = {f"memory/peak_pss_gb/{name}": peaks.tree_pss / GIB,
                   f"memory/peak_machine_used_gb/{name}": peaks.machine_used / GIB}
        self.tracker.scalars(metrics, step)  # not in the run state: no two runs measure the same
        self._memory_log[window] = {"peak_pss_bytes": peaks.tree_pss, "peak_machine_used_bytes": peaks.machine_used,
                                  "peak_pss_bytes_per_process": dict(top_processes(peaks, 20)),
                                  "pss_bytes_at_tree_peak": dict(top_processes(peaks, 20, at_tree_peak=True))}
        write_atomically(self.run_dir / "logs" / "memory.json", json.dumps(self._memory_log, indent=1))

    def _phase_size(self, phase: Phase) -> tuple[int, str]:
        """The bar's length: training steps, or the phase's parts."""
        if phase.name in ROLES:
            return getattr(self.recipe, phase.name).steps, "steps"
        if phase.name == "dataset":
            return 3, "parts (questions, votes, flip check)"
        return 2, "parts (greedy, votes)"

    def _open_run_dir(self, base_model: str) -> RunState:
        """Create the run directory, or check that it belongs to this same recipe."""
        saved = self.run_dir / "recipe.yaml"
        differences = recipe_differences(_saved_recipe(saved), self.recipe) if saved.is_file() else []
        if differences:
            raise RecipeError(
                f"{self.run_dir}: holds a run of a different recipe (see {saved}); differing keys "
                f"(saved -> now): {describe(differences)}. Resume with the same recipe and overrides, "
                "or choose another run_dir= or name="
            )
        write_atomically(saved, recipe_to_yaml(self.recipe))  # new keys, at their defaults
        state = load_state(self.run_dir)
        if state is None:
            state = RunState(challenger_path=base_model, solver_path=base_model)
        check_state_paths(state, self.run_dir, base_model)
        self._load_bandits(state.bandits)
        self.examples.load_state_dict(state.examples)
        if state.rng:
            self.rng.bit_generator.state = state.rng
        if state.completed:
            self.console.say(f"resuming {self.run_dir} after {state.completed[-1]} "
                             f"(global step {state.global_step})")
        return state

    def _load_bandits(self, saved: dict[str, Any]) -> None:
        """Each role's curriculum from the run state; a run of an earlier version kept one
        bandit for both roles ("curriculum"): both roles resume from it."""
        if "curriculum" in saved:
            self.console.say("the run state holds one curriculum for both roles (an earlier version): "
                             "each role's curriculum resumes from it")
            saved = {role: saved["curriculum"] for role in ROLES}
        for role, state in saved.items():
            self.bandits[role].load_state_dict(state)

    def _start_roles(self, base_model: str) -> None:
        scorers = {"challenger": self._score_challenger,
                   "solver": partial(score_solver_batch, self.domain, reward=self.recipe.solver.reward)}
        for role in ROLES:
            self.roles[role] = self.backend.build_role(RoleInputs(
                role=role, recipe=self.recipe, domain=self.domain, categories=self.categories, examples=self.examples,
                bandit=self.bandits[role], rng=self.rng, base_model=base_model, run_dir=self.run_dir,
                scorer=scorers[role]))
            checkpoint = self.state.verl_checkpoints.get(role)
            if checkpoint:
                self.roles[role].restore(Path(checkpoint), self.state.global_step)

    # --- phases: each returns the last global step it used ------------------------------------

    def _phase_eval(self, phase: Phase) -> int:
        return self._evaluate(phase)  # the base model (eval_base) is evaluated like any solver

    def _phase_challenger(self, phase: Phase) -> int:
        return self._train(phase, self.recipe.challenger.steps)

    def _phase_solver(self, phase: Phase) -> int:
        questions, agreements = load_dataset(Path(self.state.datasets[str(phase.iteration)]))
        self.roles["solver"].set_questions(questions, agreements)
        return self._train(phase, self.recipe.solver.steps)

    def _train(self, phase: Phase, steps: int) -> int:
        role = phase.name
        if steps == 0:  # challenger.steps = 0: the base challenger, untrained
            return self.state.global_step
        first = self.state.global_step + 1

        def on_step(batch: StepBatch) -> None:
            self.progress.show(self._after_step(role, batch), advance=1)

        def on_metrics(data: dict[str, float], step: int) -> None:  # the engine's own, out of the way
            self.tracker.scalars({f"{VERL_PREFIX}/{role}/{k}": v for k, v in data.items()}, step)

        self._release_others(role)
        self.roles[role].train(steps, first, on_step, on_metrics)
        self._save_role(role, phase.iteration, first + steps - 1)
        return first + steps - 1

    def _after_step(self, role: str, batch: StepBatch) -> dict[str, float | None]:
        """Curriculum update and coevolve's per-step metrics, at the step's number."""
        bandit = self.bandits[role]
        rewards = arm_rewards(batch.categories, batch.advantages)
        if self.recipe.curriculum.mode == "bandit":  # "uniform": the values stay equal
            bandit.update(rewards)
        metrics = {f"{role}/reward_mean": float(np.mean(batch.rewards)),
                   f"{role}/informative_group_rate": _informative_rate(batch)}
        prefix = "curriculum" if role == "solver" else "curriculum/challenger"  # the solver's: the dataset's
        metrics.update({f"{prefix}/q/{c}": q for c, q in bandit.q.items()})
        metrics.update({f"{prefix}/prob/{c}": p for c, p in bandit.probabilities().items()})
        metrics.update({f"curriculum/{role}_arm_reward/{c}": r for c, r in rewards.items()})
        metrics.update(batch.scored.metrics)
        self._log(metrics, batch.step)
        if role == "solver":
            self._warn_labels("the pseudo-label accuracy of the solver's questions (against the oracle)",
                              metrics.get("solver/pseudo_label_accuracy"), batch.step)
        self.tracker.text(f"{role}/samples", batch.scored.rows[:8], _TEXT_HEADERS[role], batch.step)
        return metrics

    def _log(self, metrics: dict[str, float | None], step: int) -> None:
        """Scalars to TensorBoard, also kept for the phase's summary in the run state."""
        self.tracker.scalars(metrics, step)
        for tag, value in metrics.items():
            if value is not None:
                self._phase_values.setdefault(tag, []).append(float(value))

    def _warn_labels(self, what: str, value: float | None, step: int, support: str = "") -> None:
        """Console and TensorBoard warning, once per phase, when labels are mostly wrong."""
        message = self._label_warnings.first(self._phase_key, label_warning(
            what, value, str(self.run_dir / "recipe.yaml"), support))
        if message is None:
            return
        self.console.warn(f"iteration {self._phase_key}: {message}")
        self.tracker.text("warnings/label_quality", [(self._phase_key, message)], ("phase", "warning"), step)

    def _add_seconds(self, part: str, seconds: float) -> None:
        self.state.part_seconds[part] = round(self.state.part_seconds.get(part, 0.0) + seconds, 2)

    @contextmanager
    def _timed(self, part: str) -> Iterator[None]:
        """Add the block's wall time to `<current phase>:<part>` in the run state."""
        start = time.monotonic()
        try:
            yield
        finally:
            self._add_seconds(f"{self._phase_key}:{part}", time.monotonic() - start)

    def _save_role(self, role: str, iteration: int, step: int) -> None:
        """HF export for users and verl's checkpoint for resume, both renamed into place."""
        with self._timed("checkpoint"):
            self._write_checkpoints(role, iteration, step)

    def _write_checkpoints(self, role: str, iteration: int, step: int) -> None:
        trainer = self.roles[role]
        hf_dir = self.run_dir / "checkpoints" / f"iter_{iteration:03d}" / role
        trainer.export_hf(hf_dir)
        write_manifest(hf_dir)
        verl_dir = self.run_dir / "verl" / role / f"iter_{iteration:03d}"
        tmp = verl_dir.with_name(f".{verl_dir.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        trainer.save(tmp, step)
        write_manifest(tmp)
        shutil.rmtree(verl_dir, ignore_errors=True)
        tmp.rename(verl_dir)
        setattr(self.state, f"{role}_path", str(hf_dir))
        self.state.verl_checkpoints[role] = str(verl_dir)

    def _phase_dataset(self, phase: Phase) -> int:
        d = self.recipe.dataset
        categories = self.bandits["solver"].sample(d.questions)
        parsed = self._dataset_questions(phase.iteration, categories)
        self.progress.show({"dataset/questions_generated": len(parsed),
                            "dataset/questions_format_valid": sum(p is not None for p in parsed)}, 1)
        with self._solver_voting():
            result = build_solver_dataset(self.domain, parsed, sample=self.vote_fn(), samples=self.recipe.vote.samples,
                                          band=(d.band_low, d.band_high), text_filter=self.text_filter,
                                          seeds=() if d.keep_seed_copies else self._seed_texts,
                                          adaptive=self.adaptive)
        if d.label == "oracle":
            result = with_oracle_labels(self.domain, result)
        summary = summarise(self.domain, result.kept, result.kept_agreements)
        self.progress.show({"dataset/questions_kept": len(result.kept), "dataset/kept_informative": summary.informative,
                            "dataset/pseudo_label_accuracy": result.pseudo_label_accuracy}, 1)
        flip_rate = self._label_flip_rate(phase.iteration)
        self.progress.show({"dataset/label_flip_rate": flip_rate}, 1)
        path = self.run_dir / "data" / f"iter_{phase.iteration:03d}" / "solver_dataset.jsonl"
        save_dataset(result.kept, result.kept_agreements, path)
        self.state.datasets[str(phase.iteration)] = str(path)
        step = self.state.global_step + 1
        self._log_dataset(result, summary, step)
        self._log({"dataset/label_flip_rate": flip_rate,
                   "dataset/kept_seed_copy_rate": mean_or_none(self._copies_a_seed(q.text) for q in result.kept)}, step)
        self._warn_labels("the pseudo-label accuracy of the kept questions (against the oracle)",
                          result.pseudo_label_accuracy if result.kept else None, step,
                          f"{len(result.kept)} questions kept")
        if not result.kept:
            raise RuntimeError(
                f"iteration {phase.iteration}: no question kept out of {result.generated} "
                f"(rejected: {result.rejected}); widen dataset.band_low/band_high or raise "
                "dataset.questions"
            )
        return step

    def _dataset_questions(self, iteration: int, categories: list[str]) -> list[Question | None]:
        """The dataset's candidate questions: the challenger's (parsed) or the domain generator's."""
        if self.recipe.dataset.source == "generator":
            rng = random.Random(f"generator/{self.recipe.seed}/{iteration}")
            return [Question(f"it{iteration}/{i}", c, self.domain.generate(c, rng)) for i, c in enumerate(categories)]
        d = self.recipe.dataset
        messages = [challenger_message(self.domain, c, self.examples.draw(c, f"dataset/{iteration}/{i}"))
                    for i, c in enumerate(categories)]
        completions = self.sample("challenger", messages, SamplingParams(
            n=1, temperature=d.temperature, top_p=d.top_p, max_new_tokens=self.recipe.challenger.max_new_tokens))
        return parse_questions(self.domain, [c[0] for c in completions], categories, f"it{iteration}/")

    def _label_flip_rate(self, iteration: int) -> float | None:
        """Share of the previous iteration's kept questions whose majority answer, voted again
        by today's solver, is no longer their label (at most `dataset.flip_check_questions`)."""
        previous = self.state.datasets.get(str(iteration - 1))
        limit = self.recipe.dataset.flip_check_questions
        if previous is None or limit == 0:
            return None
        questions = load_dataset(Path(previous))[0][:limit]
        return label_flip_rate(questions, self._solver_votes(questions), self.domain.equivalent)

    def _log_dataset(self, result, summary: DatasetSummary, step: int) -> None:
        metrics = {"dataset/questions_generated": result.generated,
                   "dataset/questions_format_valid": result.format_valid,
                   "dataset/questions_kept": len(result.kept),
                   "dataset/pseudo_label_accuracy": result.pseudo_label_accuracy,
                   "dataset/pseudo_label_accuracy_all_voted": result.pseudo_label_accuracy_all,
                   "dataset/vote_samples_per_question": result.vote_samples / max(len(result.agreements), 1)}
        # kept questions the solver's votes split on (a GRPO group can compare answers), those
        # answered without work, and those both split and not trivial (measure/datasets.py)
        metrics.update({"dataset/kept_split_votes": summary.split_votes, "dataset/kept_trivial": summary.trivial,
                        "dataset/kept_informative": summary.informative})
        metrics.update({f"dataset/rejected/{k}": v for k, v in result.rejected.items()})
        self._log(metrics, step)
        self.tracker.histogram("dataset/agreement_hist", result.agreements, step)
        rows = [(q.category, q.text, q.answer) for q in result.kept[:16]]
        self.tracker.text("dataset/kept_questions", rows, ("category", "question", "pseudo-label"), step)

    def _evaluate(self, phase: Phase) -> int:
        completions = self.sample("solver", [self.domain.solver_prompt(q) for q in self.heldout],
                                  greedy_params(self.recipe.eval.max_new_tokens))
        result, graded = score_answers(self.domain, self.heldout, completions)
        step = self.state.global_step + 1
        metrics = result.metrics("eval")
        if self.dev:
            dev_completions = self.sample("solver", [self.domain.solver_prompt(q) for q in self.dev],
                                          greedy_params(self.recipe.eval.max_new_tokens))
            metrics["eval/dev_accuracy"] = score_answers(self.domain, self.dev, dev_completions)[0].accuracy
        self.progress.show(metrics, 1)
        if phase.name == BASE_EVAL:
            metrics["eval/base_accuracy"] = result.accuracy
        quality = self._heldout_vote_quality()
        if quality is not None:
            metrics["eval/majority_vote_accuracy"] = quality.majority_accuracy
            metrics["eval/in_band_label_accuracy"] = quality.in_band_label_accuracy
        self._log(metrics, step)
        self.progress.show(metrics, 1)
        if quality is not None:
            self._warn_labels("the held-out estimate of the pseudo-label accuracy (in-band majority "
                              "votes at vote.temperature)", quality.in_band_label_accuracy, step,
                              f"right on {quality.in_band_correct} of {quality.in_band} in-band questions")
        rows = [(q.category, q.text, q.answer, a, c[0]) for q, a, c in
                zip(self.heldout, graded, completions, strict=True)][:12]
        self.tracker.text("eval/samples", rows, ("category", "question", "true", "graded", "completion"), step)
        right = [agrees(a, q.answer, self.domain.equivalent) for q, a in zip(self.heldout, graded, strict=True)]
        write_atomically(self.run_dir / "eval" / f"{phase.key.replace('/', '_')}.json",
                         json.dumps({"accuracy": result.accuracy, "correct": result.correct,
                                     "total": result.total,
                                     "questions": [{"id": q.id, "category": q.category, "text": q.text,
                                                    "correct": r}
                                                   for q, r in zip(self.heldout, right, strict=True)]}, indent=2))
        return step

    def _heldout_vote_quality(self):
        """Majority votes at the vote temperature on the first `eval.vote_per_category`
        held-out questions of each category, or None when that is 0."""
        if not self.heldout_voted:
            return None
        d = self.recipe.dataset
        return heldout_vote_quality(self.heldout_voted, self._solver_votes(self.heldout_voted), (d.band_low, d.band_high),
                                    self.domain.equivalent)

    # --- sampling through the roles' rollout servers -------------------------------------------

    def sample(self, role: str, messages: list[str], params: SamplingParams) -> list[list[str]]:
        with self.serving(role):
            return self.roles[role].sample(messages, params, seed=int(self.rng.integers(1 << 30)))

    @contextmanager
    def serving(self, role: str) -> Iterator[None]:
        """The role's rollout servers awake with its latest weights, once for nested calls.

        Adaptive voting samples in several rounds; on a GPU each wake-up syncs weights, so the
        rounds of one vote share one wake-up.
        """
        if role in self._serving:
            yield
            return
        self._serving.add(role)
        self._release_others(role)
        try:
            with self.roles[role].serving(self.state.global_step):
                yield
        finally:
            self._serving.discard(role)

    def _release_others(self, role: str) -> None:
        """Before `role` samples or trains, the other roles free what they hold for sampling: a
        role's samplers keep its weights between its own sampling calls, never beside another
        role's work (the run's peak memory is one role's work plus the other's idle state)."""
        for other, trainer in self.roles.items():
            if other != role and other not in self._serving:
                trainer.release()

    @contextmanager
    def _solver_voting(self) -> Iterator[None]:
        """The frozen solver awake for votes, their time counted under `votes`."""
        with self._timed("votes"), self.serving("solver"):
            yield

    def _solver_votes(self, questions: Sequence[Question]) -> list[Vote]:
        """The solver's majority vote on each question (`vote.samples` answers each)."""
        with self._solver_voting():
            groups = answer_groups(self.domain, questions, sample=self.vote_fn(), n=self.recipe.vote.samples)
        return votes(self.domain, groups)

    def vote_fn(self) -> Callable[[list[str], int], list[list[str]]]:
        return lambda messages, n: self.sample("solver", list(messages), vote_params(self.recipe, n))

    # --- the challenger's scorer, called by the backend on each generated batch ---------------

    def _score_challenger(self, rollouts: Sequence[Rollout]) -> ScoredBatch:
        """The step's rewards; its new, well-formed, in-band questions join the examples shown later."""
        band = (self.recipe.dataset.band_low, self.recipe.dataset.band_high)
        how = ChallengerScoring(self.vote_fn(), self.recipe.vote.samples, reward_settings(self.recipe), band,
                                f"step{self.state.global_step}/", self.adaptive)
        with self._solver_voting():
            items = score_challenger_items(self.domain, rollouts, how)
        for item in items:
            if item.vote is not None and in_band(item.vote.agreement, *band):
                self.examples.add_own(item.category, [item.question.text])
        return challenger_batch(items, band)

    def _copies_a_seed(self, text: str) -> bool:
        """The dataset filter's similar-to-seed test, against every example the challenger sees."""
        return self.text_filter.too_similar(text, self._seed_texts)


_TEXT_HEADERS = {"challenger": CHALLENGER_ROWS, "solver": SOLVER_ROWS}


class RunStopped(KeyboardInterrupt):
    """The run was asked to stop (SIGTERM: a scheduler's preemption, `timeout`, `kill`).

    A KeyboardInterrupt, because the signal handler may run inside Ray's wait for a result
    (`ray.get` checks signals from C code): Ray turns a KeyboardInterrupt raised there into
    an orderly interruption of the wait, and a KeyboardInterrupt of its own is what reaches
    the driver; any other exception escapes from C and leaves Python in an error state.
    `stop_signal()` then says which signal it was.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_stop_signals: list[int] = []  # the stop signals received by this process, in order


def _stop(signum: int, frame: Any) -> None:
    _stop_signals.append(signum)
    raise RunStopped(signum)


def stop_signal(interrupt: KeyboardInterrupt) -> int:
    """The signal behind an interruption: a RunStopped's own, else the first stop signal
    received (Ray re-raises a plain KeyboardInterrupt for it), else SIGINT (Ctrl-C)."""
    if isinstance(interrupt, RunStopped):
        return interrupt.signum
    return _stop_signals[0] if _stop_signals else signal.SIGINT


def where(run_dir: Path, report_md: Path, report_png: Path) -> str:
    """Where a finished run's outputs are."""
    return "\n".join([f"report: {report_md} (plot {report_png})",
                      f"checkpoints: {run_dir / 'checkpoints'} (Hugging Face, one folder per iteration and role)",
                      f"TensorBoard: tensorboard --logdir {run_dir / 'tensorboard'}",
                      f"logs of verl, Ray and the workers: {run_dir / 'logs'}"])


def _informative_rate(batch) -> float:
    """Share of responses whose advantage is non-zero: groups with a gradient."""
    return mean_or_none(abs(a) > 1e-6 for a in batch.advantages)


def _saved_recipe(path: Path) -> str:
    """The run's saved recipe as text; RunDirError naming it when it is not UTF-8 YAML."""
    import yaml
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        text = path.read_bytes().decode("utf-8")
        OmegaConf.create(text)
    except UnicodeDecodeError as err:
        raise RunDirError(f"{path}: not UTF-8 at byte {err.start}; move it away (with state.json) "
                          "to start over") from None
    except (yaml.YAMLError, OmegaConfBaseException, ValueError, TypeError) as err:
        raise RunDirError(f"{path}: not a recipe ({type(err).__name__}: {str(err)[:200]}); move it away "
                          "(with state.json) to start over") from None
    return text


def with_oracle_labels(domain: Domain, result):
    """The dataset with every kept question labelled by the domain's oracle (dataset.label: oracle)."""
    relabelled = []
    for q in result.kept:
        truth = domain.oracle(q)
        if truth is None:
            raise ValueError(f"dataset.label = 'oracle', but the {domain.name} domain has no true answer "
                             f"for {q.text!r}; allowed: dataset.label = majority")
        relabelled.append(Question(q.id, q.category, q.text, truth, "oracle"))
    return dataclasses.replace(result, kept=relabelled)


def dev_scores(metrics: dict[str, dict[str, float]]) -> dict[int, float]:
    """Iteration (0: the base model) -> greedy accuracy on the dev split, from the phases' metrics."""
    return {int(key.split("/")[0]): values["eval/dev_accuracy"] for key, values in metrics.items()
            if key.split("/")[1] in ("eval", BASE_EVAL) and "eval/dev_accuracy" in values}


def best_on_dev(scores: dict[int, float]) -> int:
    """The iteration with the best dev accuracy; a tie goes to the later iteration."""
    if not scores:
        raise ValueError("no evaluation scored the dev split: nothing to choose the final solver from")
    return max(scores, key=lambda iteration: (scores[iteration], iteration))


def reward_settings(recipe: Recipe) -> ChallengerRewardSettings:
    """The recipe's challenger reward keys."""
    c = recipe.challenger
    return ChallengerRewardSettings(c.repetition_threshold, c.invalid_reward, c.copy_reward, c.uncertainty_peak,
                                    c.unanimous_reward, c.trivial_reward, c.repetition_scope)


def adaptive_voting(recipe: Recipe) -> AdaptiveVoting | None:
    """The recipe's adaptive voting, or None when `vote.adaptive.enabled` is false."""
    a = recipe.vote.adaptive
    if not a.enabled:
        return None
    return AdaptiveVoting(a.first_round, a.round_size, a.confidence, a.reward_tolerance)

