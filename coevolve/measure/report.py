"""`coevolve report RUN_DIR`: did the solver get better, and were its labels right?

A few numbers with their uncertainty: held-out accuracy per iteration and category with 95 %
intervals, the final solver's gain over the base model with a paired bootstrap interval (both
answer the same questions), and per iteration the pseudo-label accuracy, the questions kept
and the challenger's reward. It reads only what the run committed (`state.json` and
`eval/<phase>.json`); `plot_report` draws the PNG.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from coevolve.runstate import BASE_EVAL, PHASES, STATE_FILE, RunDirError, load_state, read_json
from coevolve.stats import Interval, error_bars, paired_interval, proportion, pyplot


class ReportError(ValueError):
    """A run directory `coevolve report` cannot read; the message names the path."""


@dataclass(frozen=True)
class EvalPoint:
    """Held-out greedy accuracy after one iteration (0 = the base model)."""

    iteration: int
    overall: Interval
    per_category: dict[str, Interval]
    correct: dict[str, bool]  # question id -> greedy answer right
    categories_of: dict[str, str]  # question id -> category
    texts: dict[str, str] = field(default_factory=dict)  # question id -> text (runs that kept it)


@dataclass(frozen=True)
class IterationSummary:
    """What one iteration's phases committed (None where the run did not measure it)."""

    iteration: int
    pseudo_label_accuracy: float | None  # kept questions' labels against the oracle
    heldout_label_accuracy: float | None  # the held-out estimate (in-band majority votes)
    label_flip_rate: float | None
    questions_generated: float | None
    questions_kept: float | None
    # kept questions with split votes that are not trivial (measure/datasets.py); None in runs before it
    questions_informative: float | None
    challenger_reward: float | None
    challenger_valid_rate: float | None
    seconds: dict[str, float]  # phase name -> wall time
    challenger_new_valid_rate: float | None = None  # well-formed and not a copy of a shown example
    challenger_gradient_share: float | None = None  # share of challenger rollouts in groups with a gradient
    challenger_in_band_share: float | None = None  # voted new questions inside the dataset's band
    dev_accuracy: float | None = None  # the solver after this iteration, on the dev split


@dataclass(frozen=True)
class Gain:
    """Accuracy of the last evaluation minus the base model's, on the same questions."""

    category: str
    questions: int
    base: float
    final: float
    low: float  # paired bootstrap 95 % interval of final - base
    high: float

    @property
    def difference(self) -> float:
        return self.final - self.base


@dataclass(frozen=True)
class RunReport:
    name: str
    run_dir: str
    categories: tuple[str, ...]
    evals: tuple[EvalPoint, ...]
    iterations: tuple[IterationSummary, ...]
    gains: tuple[Gain, ...]  # overall ("all") first, then per category; empty before 2 evals
    # The overall gain split by whether a test question's text is also in a solver dataset of the
    # run (the challenger wrote it, the solver trained on it with its own majority label):
    # ("trained on", "never trained on"); None before 2 evals or a question has no text.
    overlap: tuple[Gain, Gain] | None = None
    overlap_note: str | None = None  # why the overlap split is missing, when the user can change that
    # The iteration whose solver the run kept (0: the base model; chosen on the dev split when
    # eval.keep_best_on_dev), None for runs that did not record it (the last evaluation is used).
    kept_iteration: int | None = None


def paired_gain(category: str, base: Sequence[bool], final: Sequence[bool]) -> Gain:
    """final - base accuracy with a paired percentile bootstrap 95 % interval (scipy)."""
    a, b = np.asarray(base, dtype=float), np.asarray(final, dtype=float)
    try:
        low, high = paired_interval(a, b)  # checks the lengths
    except ValueError as err:
        raise ValueError(f"{category}: base and final answers: {err}") from None
    return Gain(category=category, questions=len(a), base=float(a.mean()), final=float(b.mean()), low=low, high=high)


def eval_point(iteration: int, raw: dict) -> EvalPoint:
    """One `eval/<phase>.json` as an EvalPoint."""
    per_category = {c: proportion(raw["correct"][c], raw["total"][c]) for c in sorted(raw["total"])}
    questions = raw.get("questions", [])
    return EvalPoint(iteration=iteration,
                     overall=proportion(sum(raw["correct"].values()), sum(raw["total"].values())),
                     per_category=per_category, correct={q["id"]: bool(q["correct"]) for q in questions},
                     categories_of={q["id"]: q["category"] for q in questions},
                     texts={q["id"]: q["text"] for q in questions if "text" in q})


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def overlap_gains(base: EvalPoint, final: EvalPoint, trained_texts: set[str]) -> tuple[Gain, Gain] | None:
    """The overall gain on test questions whose text the solver also trained on, and on the rest."""
    shared = [i for i in base.correct if i in final.correct]
    if not shared or any(i not in final.texts for i in shared):
        return None
    trained = {_norm(t) for t in trained_texts}
    seen = [i for i in shared if _norm(final.texts[i]) in trained]
    unseen = [i for i in shared if _norm(final.texts[i]) not in trained]
    if not seen or not unseen:
        return None
    return (paired_gain("trained on", [base.correct[i] for i in seen], [final.correct[i] for i in seen]),
            paired_gain("never trained on", [base.correct[i] for i in unseen], [final.correct[i] for i in unseen]))


def _trained_texts(state) -> set[str]:
    """Every question text of the run's solver datasets."""
    texts: set[str] = set()
    for path in map(Path, state.datasets.values()):
        if not path.is_file():
            raise ReportError(f"{path}: missing, though {STATE_FILE} lists it as a solver dataset")
        texts |= _dataset_texts(path)
    return texts


def _read_eval(path: Path, iteration: int) -> EvalPoint:
    """One evaluation file; a garbled or truncated one is a ReportError naming it."""
    try:
        return eval_point(iteration, read_json(path, "an evaluation file of coevolve"))
    except RunDirError as err:
        raise ReportError(str(err)) from None
    except (KeyError, TypeError, AttributeError, ValueError) as err:
        raise ReportError(f"{path}: not an evaluation file of coevolve ({type(err).__name__}: {err}); "
                          "rerun `coevolve eval` or the run's eval phase") from None


def _dataset_texts(path: Path) -> set[str]:
    """The question texts of a solver dataset (JSONL); a bad line is a ReportError naming it."""
    from coevolve.domains.files import read_jsonl

    texts = set()
    for number, row in read_jsonl(path, error=ReportError):
        if not isinstance(row.get("text"), str):
            raise ReportError(f"{path}:{number}: not a solver dataset row with a text (a string); "
                              "the file is truncated or garbled")
        texts.add(row["text"])
    return texts


def _with_texts(run_dir: Path, point: EvalPoint, trust_recipe: bool) -> EvalPoint:
    """Runs written before eval files kept question texts: rebuild them from the run's recipe
    (the held-out questions are a function of it). A recipe whose domain is user code
    (`module:Class`) is imported only when `trust_recipe`; otherwise the texts stay unknown."""
    if point.texts or not point.correct:
        return point
    from dataclasses import replace

    if _needs_trust(run_dir, point, trust_recipe):
        return point

    from coevolve.domains import build_domain
    from coevolve.domains.base import DomainOptionError
    from coevolve.measure.evaluation import EvalInputError, recipe_heldout
    from coevolve.recipe.load import load_recipe
    from coevolve.recipe.sources import RecipeError

    try:
        recipe = load_recipe(run_dir / "recipe.yaml")
        domain = build_domain(recipe.domain.name, recipe.domain.options)
        try:
            questions, _ = recipe_heldout(recipe, domain)
        finally:
            domain.close()
    except (RecipeError, DomainOptionError, EvalInputError) as err:
        raise ReportError(f"{run_dir / 'recipe.yaml'}: cannot rebuild the held-out question texts "
                          f"for the overlap ({err})") from None
    texts = {q.id: q.text for q in questions if q.id in point.correct}
    return replace(point, texts=texts) if len(texts) == len(point.correct) else point


def _needs_trust(run_dir: Path, point: EvalPoint, trust_recipe: bool) -> bool:
    """Whether the texts of `point` could come only from the recipe's user domain code,
    which is not imported without `trust_recipe`."""
    return (not point.texts and bool(point.correct) and not trust_recipe
            and ":" in _saved_domain_name(run_dir))


def _saved_domain_name(run_dir: Path) -> str:
    """`domain.name` of the run's saved recipe, read as data (nothing imported)."""
    import yaml

    path = run_dir / "recipe.yaml"
    try:
        name = ((yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("domain") or {}).get("name", "")
    except (OSError, UnicodeDecodeError, yaml.YAMLError, AttributeError) as err:
        raise ReportError(f"{path}: not a readable recipe ({type(err).__name__}: {err})") from None
    return str(name)


def gains(base: EvalPoint, final: EvalPoint) -> tuple[Gain, ...]:
    """Overall and per-category gains on the questions both evaluations answered."""
    shared = [i for i in base.correct if i in final.correct]
    if not shared:
        return ()
    out = [paired_gain("all", [base.correct[i] for i in shared], [final.correct[i] for i in shared])]
    for category in sorted({base.categories_of[i] for i in shared}):
        ids = [i for i in shared if base.categories_of[i] == category]
        out.append(paired_gain(category, [base.correct[i] for i in ids], [final.correct[i] for i in ids]))
    return tuple(out)


def iteration_summary(iteration: int, metrics: dict[str, dict[str, float]],
                      seconds: dict[str, float]) -> IterationSummary:
    def get(phase: str, tag: str) -> float | None:
        return metrics.get(f"{iteration}/{phase}", {}).get(tag)

    return IterationSummary(
        iteration=iteration,
        pseudo_label_accuracy=get("dataset", "dataset/pseudo_label_accuracy"),
        heldout_label_accuracy=get("eval", "eval/in_band_label_accuracy"),
        label_flip_rate=get("dataset", "dataset/label_flip_rate"),
        questions_generated=get("dataset", "dataset/questions_generated"),
        questions_kept=get("dataset", "dataset/questions_kept"),
        questions_informative=get("dataset", "dataset/kept_informative"),
        challenger_reward=get("challenger", "challenger/reward_mean"),
        challenger_valid_rate=get("challenger", "challenger/format_valid_rate"),
        challenger_new_valid_rate=get("challenger", "challenger/new_valid_rate"),
        challenger_gradient_share=get("challenger", "challenger/informative_group_rate"),
        challenger_in_band_share=get("challenger", "challenger/in_band_share"),
        dev_accuracy=get("eval", "eval/dev_accuracy"),
        seconds={key.split("/")[1]: value for key, value in seconds.items()
                 if key.split("/")[0] == str(iteration)},
    )


def load_report(run_dir: Path, *, trust_recipe: bool = False) -> RunReport:
    """The report of the run in `run_dir` from its committed files.

    `trust_recipe`: the saved recipe may import its own domain code (`module:Class`), for
    the text overlap of runs written before eval files kept question texts.
    """
    run_dir = Path(run_dir)
    try:
        state = load_state(run_dir)
    except RunDirError as err:
        raise ReportError(str(err)) from err
    if state is None:
        raise ReportError(f"{run_dir}: no {STATE_FILE}; not a coevolve run directory, or no phase has "
                          "finished yet (give the run_dir of a run, e.g. runs/arithmetic-cpu)")
    evals = []
    for key in state.completed:
        iteration, name = key.split("/")
        if name in ("eval", BASE_EVAL):
            path = run_dir / "eval" / f"{iteration}_{name}.json"
            if not path.is_file():
                raise ReportError(f"{path}: missing, though {STATE_FILE} lists {key} as done")
            evals.append(_read_eval(path, int(iteration)))
    iterations = sorted({int(k.split("/")[0]) for k in state.completed} - {0})
    categories = tuple(sorted({c for e in evals for c in e.per_category}))
    kept = next((e for e in evals if e.iteration == state.kept_iteration), evals[-1] if evals else None)
    overlap, overlap_note = None, None
    if len(evals) > 1 and state.datasets:
        overlap = overlap_gains(evals[0], _with_texts(run_dir, kept, trust_recipe), _trained_texts(state))
        if _needs_trust(run_dir, kept, trust_recipe):
            overlap_note = "overlap omitted: rerun with --trust-recipe"
    return RunReport(
        name=run_dir.name, run_dir=str(run_dir), categories=categories, evals=tuple(evals),
        iterations=tuple(iteration_summary(i, state.metrics, state.phase_seconds) for i in iterations),
        gains=gains(evals[0], kept) if len(evals) > 1 else (), overlap=overlap,
        overlap_note=overlap_note, kept_iteration=state.kept_iteration,
    )


def _number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _interval(value: Interval) -> str:
    return f"{value.k / value.n:.3f} [{value.low:.3f}, {value.high:.3f}] ({value.k}/{value.n})"


def summary(report: RunReport) -> str:
    """The few lines printed when a run ends: accuracy per iteration and the gain."""
    lines = [f"held-out greedy accuracy of {report.name} (95 % Wilson interval):"]
    lines += [f"  {'base model' if e.iteration == 0 else f'iteration {e.iteration}':<12} {_interval(e.overall)}"
              for e in report.evals]
    if report.kept_iteration is not None:
        dev = {i.iteration: i.dev_accuracy for i in report.iterations}
        shown = ", ".join(f"{i} {_number(a, 3)}" for i, a in sorted(dev.items()))
        lines.append(f"  final solver: {'the base model' if report.kept_iteration == 0 else f'iteration {report.kept_iteration}'}"
                     f" (kept on the dev split; dev accuracy per iteration: {shown or '-'})")
    if report.gains:
        g = report.gains[0]
        lines.append(f"  gain over the base model: {100 * g.difference:+.1f} points, paired bootstrap 95 % "
                     f"interval [{100 * g.low:+.1f}, {100 * g.high:+.1f}] on {g.questions} questions")
    if report.overlap:
        seen, unseen = report.overlap
        lines.append(f"  on the {unseen.questions} test questions never in a solver dataset: {100 * unseen.difference:+.1f} "
                     f"[{100 * unseen.low:+.1f}, {100 * unseen.high:+.1f}]; on the {seen.questions} the challenger "
                     f"also wrote (trained on with self-made labels): {100 * seen.difference:+.1f} "
                     f"[{100 * seen.low:+.1f}, {100 * seen.high:+.1f}]")
    if report.overlap_note:
        lines.append(f"  {report.overlap_note}")
    labels = [f"{_number(i.pseudo_label_accuracy)}" for i in report.iterations]
    if labels:
        lines.append(f"  pseudo-label accuracy of kept questions per iteration: {', '.join(labels)}")
    return "\n".join(lines)


def run_table(report: RunReport) -> str:
    """Per iteration, as plain text for the console: held-out accuracy, label quality,
    questions kept, the challenger's reward and the wall time of each phase."""
    iterations = {i.iteration: i for i in report.iterations}
    rows = [("iteration", "held-out acc", "dev acc", "label acc", "kept/written", "informative", "challenger reward",
             "new valid", "groups w/ gradient", "in band", "time per phase")]
    for e in report.evals:
        i = iterations.get(e.iteration)
        seconds = i.seconds if i else {}
        name = "base model" if e.iteration == 0 else str(e.iteration)
        rows.append((
            name + (" (kept)" if e.iteration == report.kept_iteration else ""), _number(e.overall.value),
            _number(i.dev_accuracy) if i else "-",
            _number(i.pseudo_label_accuracy) if i else "-",
            f"{_number(i.questions_kept, 0)}/{_number(i.questions_generated, 0)}" if i else "-",
            _number(i.questions_informative, 0) if i else "-",
            _number(i.challenger_reward) if i else "-",
            _number(i.challenger_new_valid_rate) if i else "-",
            _number(i.challenger_gradient_share) if i else "-",
            _number(i.challenger_in_band_share) if i else "-",
            " ".join(f"{name} {seconds[name] / 60:.1f}m" for name in PHASES if name in seconds) or "-"))
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def report_markdown(report: RunReport, plot_name: str = "report.png") -> str:
    """The whole report: summary, per-category gains, per-iteration table, wall times."""
    out = [f"# coevolve report: {report.name}", "", "```", summary(report), "```", "",
           f"![report]({plot_name})", ""]
    if report.gains:
        out += ["## Gain of the final solver over the base model (greedy, same questions)", "",
                "| category | questions | base | final | gain | paired bootstrap 95 % interval |",
                "|---|---|---|---|---|---|"]
        out += [f"| {g.category} | {g.questions} | {g.base:.3f} | {g.final:.3f} | {100 * g.difference:+.1f} | "
                f"[{100 * g.low:+.1f}, {100 * g.high:+.1f}] |" for g in report.gains]
        out.append("")
    if report.overlap:
        out += ["## Test questions the solver also trained on", "",
                "A test question whose text the challenger also wrote was in a solver dataset, labelled by the "
                "solver's own majority vote (never by the true answer). The gain on the others is the one that "
                "shows learning beyond the questions trained on.", "",
                "| test questions | questions | base | final | gain | paired bootstrap 95 % interval |",
                "|---|---|---|---|---|---|"]
        out += [f"| {g.category} | {g.questions} | {g.base:.3f} | {g.final:.3f} | {100 * g.difference:+.1f} | "
                f"[{100 * g.low:+.1f}, {100 * g.high:+.1f}] |" for g in report.overlap]
        out.append("")
    out += ["## Held-out accuracy per iteration and category (95 % Wilson interval)", "",
            "| category | " + " | ".join(f"iteration {e.iteration}" for e in report.evals) + " |",
            "|---|" + "---|" * len(report.evals)]
    for category in report.categories:
        cells = [_interval(e.per_category[category]) if category in e.per_category else "-" for e in report.evals]
        out.append(f"| {category} | " + " | ".join(cells) + " |")
    out.append("| all | " + " | ".join(_interval(e.overall) for e in report.evals) + " |")
    out += ["", "## Per iteration", "",
            "| iteration | pseudo-label accuracy (oracle) | held-out label estimate | label flips | "
            "questions written | kept | challenger reward | challenger valid rate | seconds per phase |",
            "|---|---|---|---|---|---|---|---|---|"]
    for i in report.iterations:
        seconds = ", ".join(f"{name} {value:.0f}" for name, value in i.seconds.items())
        out.append(f"| {i.iteration} | {_number(i.pseudo_label_accuracy)} | {_number(i.heldout_label_accuracy)} | "
                   f"{_number(i.label_flip_rate)} | {_number(i.questions_generated, 0)} | "
                   f"{_number(i.questions_kept, 0)} | {_number(i.challenger_reward)} | "
                   f"{_number(i.challenger_valid_rate)} | {seconds} |")
    return "\n".join(out) + "\n"


def write_report(run_dir: Path, *, trust_recipe: bool = False) -> tuple[RunReport, Path, Path]:
    """`<run_dir>/report.md` and `<run_dir>/report.png` (`trust_recipe`: see load_report)."""
    from coevolve.runstate import write_atomically

    report = load_report(run_dir, trust_recipe=trust_recipe)
    md, png = Path(run_dir) / "report.md", Path(run_dir) / "report.png"
    plot_report(report, png)
    write_atomically(md, report_markdown(report, png.name))
    return report, md, png


def plot_report(report: RunReport, path: Path) -> Path:
    """Four panels over iterations: held-out accuracy per category (95 % CI), pseudo-label
    accuracy of kept questions, questions kept, and the challenger's mean reward."""
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    ax = axes[0][0]
    for category in report.categories:
        points = [(e.iteration, e.per_category[category]) for e in report.evals if category in e.per_category]
        heights, errors = error_bars([p[1] for p in points])
        ax.errorbar([p[0] for p in points], heights, yerr=errors, capsize=2, marker=".", label=category,
                    alpha=0.7)
    overall = [(e.iteration, e.overall) for e in report.evals]
    heights, errors = error_bars([p[1] for p in overall])
    ax.errorbar([p[0] for p in overall], heights, yerr=errors, capsize=3, marker="o", color="black",
                linewidth=2.5, label="all")
    ax.set(title="held-out greedy accuracy (0 = base model)", xlabel="iteration", ylim=(0, 1))
    ax.legend(fontsize=7, ncol=2)
    _line(axes[0][1], [(i.iteration, i.pseudo_label_accuracy) for i in report.iterations],
          "pseudo-label accuracy of kept questions", ylim=(0, 1), floor=0.5)
    _line(axes[1][0], [(i.iteration, i.questions_kept) for i in report.iterations], "questions kept")
    _line(axes[1][1], [(i.iteration, i.challenger_reward) for i in report.iterations],
          "challenger reward (mean over its steps)")
    iterations = [e.iteration for e in report.evals] or [0]
    for ax in axes.flat:
        ax.set_xticks(iterations)
        ax.set_xlim(min(iterations) - 0.3, max(iterations) + 0.3)
    fig.suptitle(f"run {report.name}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _line(ax, points: Sequence[tuple[int, float | None]], title: str, *,
          ylim: tuple[float, float] | None = None, floor: float | None = None) -> None:
    points = [(x, y) for x, y in points if y is not None]
    ax.plot([p[0] for p in points], [p[1] for p in points], marker="o")
    if floor is not None:
        ax.axhline(floor, color="black", linestyle="--", linewidth=0.8)
    ax.set(title=title, xlabel="iteration")
    if ylim:
        ax.set_ylim(*ylim)
