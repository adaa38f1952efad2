"""`coevolve probe RECIPE`: sample a model on held-out questions at several vote temperatures.

Why it exists: before a run, a user needs to know whether the solver's majority votes will be
right on the questions the band keeps (see `coevolve/measure/probe.py` for what is measured and how
the verdict is reached). This module only samples, in this process with the engine the recipe
key `resources.cpu_engine` names (`load_generator`: coevolve's fast decode loop by default,
transformers.generate if it says `generate`; no verl or Ray), and writes the outputs:
`<run_dir>/probe/probe.{json,md,png}`. Everything that can be checked (the model path, the
held-out questions) is checked before the model is loaded.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from coevolve.domains import build_domain
from coevolve.measure.evaluation import EvalInputError, check_checkpoint, recipe_heldout
from coevolve.measure.probe import ProbeReport, QuestionProbe, build_report, probe_markdown, probe_questions
from coevolve.recipe.schema import Recipe
from coevolve.runstate import write_atomically


@dataclass(frozen=True)
class ProbeOutputs:
    json: Path
    markdown: Path
    plot: Path


def parse_temperatures(text: str) -> tuple[float, ...]:
    """'0.2,0.5,1.0' -> (0.2, 0.5, 1.0); EvalInputError names the bad entry."""
    values = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            value = -1.0
        if not value > 0:
            raise EvalInputError(f"--temperatures {text!r}: {part!r} is not a temperature > 0; "
                                 "give a comma-separated list such as 0.2,0.5,1.0")
        values.append(value)
    return tuple(dict.fromkeys(values))


def run_probe(recipe: Recipe, model: Path, *, temperatures: Sequence[float], samples: int,
              split: str, generator=None) -> tuple[ProbeReport, ProbeOutputs]:
    """Probe `model` on the recipe's held-out `split` and write the outputs.

    `generator`: anything with HFGenerator's `generate(messages, params, seed)`; default: `model`
    loaded with the recipe's device, dtype and threads.
    """
    check_checkpoint(model)
    if samples < 2:
        raise EvalInputError(f"--samples {samples}: a majority vote needs at least 2 answers")
    domain = build_domain(recipe.domain.name, recipe.domain.options)
    try:
        questions, _ = recipe_heldout(recipe, domain, split)
        greedy, sampled = _sample(recipe, generator or _load(recipe, model),
                                  [domain.solver_prompt(q) for q in questions], temperatures=temperatures,
                                  samples=samples)
        by_temperature = {t: probe_questions(domain, questions, greedy, sampled[t]) for t in temperatures}
        report = build_report(domain, by_temperature, (recipe.dataset.band_low, recipe.dataset.band_high))
    finally:
        domain.close()
    settings = {"recipe": recipe.name, "model": str(model), "split": split, "samples": samples,
                "temperatures": list(temperatures), "vote": {"top_k": recipe.vote.top_k,
                                                             "top_p": recipe.vote.top_p,
                                                             "max_new_tokens": recipe.vote.max_new_tokens},
                "solver_prompt_example": domain.solver_prompt(questions[0])}
    return report, _write(report, by_temperature, settings, Path(recipe.run_dir) / "probe")


def _load(recipe: Recipe, model: Path):
    from coevolve.backend.generation.generator import DeviceUnavailable, load_generator

    try:
        return load_generator(recipe, model)
    except DeviceUnavailable as err:
        raise EvalInputError(str(err)) from err


def _sample(recipe: Recipe, generator, messages: list[str], *, temperatures: Sequence[float],
            samples: int) -> tuple[list[str], dict[float, list[list[str]]]]:
    from coevolve.run.sampling import greedy_params, vote_params

    print(f"[coevolve] probe: {len(messages)} held-out questions, greedy", flush=True)
    greedy = generator.generate(messages, greedy_params(recipe.eval.max_new_tokens))
    sampled = {}
    for temperature in temperatures:
        print(f"[coevolve] probe: {samples} votes per question at T={temperature:g}", flush=True)
        sampled[temperature] = generator.generate(messages, vote_params(recipe, samples, temperature),
                                                seed=recipe.eval.seed)
    return [g[0] for g in greedy], sampled


def _write(report: ProbeReport, by_temperature: dict[float, list[QuestionProbe]], settings: dict,
           folder: Path) -> ProbeOutputs:
    from coevolve.measure.probe import plot_probe

    outputs = ProbeOutputs(folder / "probe.json", folder / "probe.md", folder / "probe.png")
    answers = {str(t): [{"id": p.question.id, "category": p.question.category, "true": p.question.answer,
                         "greedy": p.greedy_answer, "sampled": list(p.sampled_answers)} for p in probes]
               for t, probes in by_temperature.items()}
    write_atomically(outputs.json, json.dumps({"settings": settings, **report.to_json(),
                                               "answers": answers}, indent=2))
    write_atomically(outputs.markdown, f"# probe of {settings['model']} ({settings['split']} split)\n\n"
                                       f"settings: `{json.dumps(settings)}`\n\n{probe_markdown(report)}")
    plot_probe(report, outputs.plot)
    return outputs

