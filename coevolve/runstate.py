"""What a run has finished, saved atomically so that a killed run resumes where it stopped.

A run is a fixed sequence of phases (`run_phases`): the base model's evaluation, then for each
iteration the challenger's training, the dataset, the solver's training and the evaluation.
After each phase the driver records it as done together with everything the next phase needs
(latest weights of each role, bandit states, RNG state, the global step); the state file is
replaced in one `os.replace`, so it is always either the old or the new state, never half.

A run directory is read back as untrusted input, with clear errors: a state file that is not
valid UTF-8 JSON of the right shape is refused naming the file and key; every checkpoint and
dataset path it names must lie inside the run directory (the roles' weights may also be the
base model); a checkpoint folder must carry the manifest coevolve wrote, whose file names stay
inside the folder. Resuming still loads verl's checkpoints with `torch.load(weights_only=
False)` (verl's own loader), so a run directory is trusted like code: see docs/scaling.md.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from coevolve.records import Question

PHASES = ("challenger", "dataset", "solver", "eval")
BASE_EVAL = "eval_base"
STATE_FILE = "state.json"
MANIFEST = "coevolve-manifest.json"  # in each checkpoint folder: its files and their sizes


class RunDirError(Exception):
    """The run directory cannot be resumed or committed; the message names the path."""


@dataclass(frozen=True)
class Phase:
    """One unit of work that is either done or not: `iteration` 0 is the base evaluation."""

    iteration: int
    name: str

    @property
    def key(self) -> str:
        return f"{self.iteration}/{self.name}"


def run_phases(iterations: int) -> list[Phase]:
    """Every phase of a run of `iterations` iterations, in order."""
    return [Phase(0, BASE_EVAL)] + [
        Phase(i, name) for i in range(1, iterations + 1) for name in PHASES
    ]


@dataclass
class RunState:
    """The resumable state of a run (mutable: the driver updates it after each phase)."""

    challenger_path: str  # latest weights of each role (a HF model directory)
    solver_path: str
    completed: list[str] = field(default_factory=list)  # Phase.key of finished phases
    global_step: int = 0  # the TensorBoard step axis, continuous across phases
    bandits: dict[str, Any] = field(default_factory=dict)  # role -> Bandit.state_dict()
    rng: dict[str, Any] = field(default_factory=dict)  # numpy bit generator state
    phase_seconds: dict[str, float] = field(default_factory=dict)  # Phase.key -> wall time
    datasets: dict[str, str] = field(default_factory=dict)  # iteration -> solver dataset file
    verl_checkpoints: dict[str, str] = field(default_factory=dict)  # role -> verl checkpoint dir
    # Wall time of the parts a phase's time hides: "<phase key>:votes" (sampling the solver,
    # its wake-up and weight sync included: for the challenger's rewards, or the dataset's
    # labels), "<phase key>:checkpoint", and "startup" (Ray, the workers, model loading;
    # summed over every start of the run).
    part_seconds: dict[str, float] = field(default_factory=dict)
    # Phase.key -> coevolve's own scalars of that phase, averaged over its steps (what
    # `coevolve report` reads; verl's internals stay in TensorBoard only).
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    # category -> the challenger's own accepted questions shown as examples (selfplay/examples.py)
    examples: dict[str, list[str]] = field(default_factory=dict)
    # The iteration whose solver is the run's final one (0: the base model), chosen on the dev
    # split when eval.keep_best_on_dev; None until the run has finished.
    kept_iteration: int | None = None

    def is_done(self, phase: Phase) -> bool:
        return phase.key in self.completed

    def pending(self, phases: list[Phase]) -> list[Phase]:
        return [p for p in phases if not self.is_done(p)]


def stale_checkpoints(state: RunState, run_dir: Path) -> list[Path]:
    """verl checkpoints under `<run_dir>/verl/<role>/` that the committed state no longer needs.

    Resuming needs only each role's latest verl checkpoint (model and optimizer, ~3x the
    model's size); the Hugging Face exports of every iteration are kept for users. Links are
    never followed into a deletion.
    """
    keep = {Path(p).resolve() for p in state.verl_checkpoints.values()}
    return sorted(p for p in Path(run_dir).glob("verl/*/iter_*")
                  if p.is_dir() and not p.is_symlink() and p.resolve() not in keep)


def inside(path: str | Path, folder: Path) -> bool:
    """Whether `path` (links resolved) lies inside `folder`."""
    return Path(path).resolve().is_relative_to(Path(folder).resolve())


def check_state_paths(state: RunState, run_dir: Path, base_model: str) -> None:
    """Raise RunDirError unless every path the state names lies inside `run_dir` (the roles'
    weights may also be `base_model`, what they start as)."""
    where = Path(run_dir) / STATE_FILE
    named = {**{f"verl_checkpoints.{k}": v for k, v in state.verl_checkpoints.items()},
             **{f"datasets.{k}": v for k, v in state.datasets.items()}}
    for role in ("challenger_path", "solver_path"):
        value = getattr(state, role)
        if Path(value).resolve() != Path(base_model).resolve():
            named[role] = value
    outside = [f"{key} = {value}" for key, value in named.items() if not inside(value, run_dir)]
    if outside:
        raise RunDirError(f"{where}: names paths outside the run directory {run_dir}: {'; '.join(outside)}. "
                          "A run state only names its own files; start over in a new run_dir")


def save_state(state: RunState, run_dir: Path) -> None:
    """Write `state.json` atomically (temporary file, fsync, rename)."""
    write_atomically(Path(run_dir) / STATE_FILE, json.dumps(asdict(state), indent=2, sort_keys=True))


def load_state(run_dir: Path) -> RunState | None:
    """The saved state of the run in `run_dir`, or None if it has not finished a phase."""
    path = Path(run_dir) / STATE_FILE
    if not path.is_file():
        return None
    raw = read_json(path, "a coevolve run state")
    if not isinstance(raw, dict):
        raise RunDirError(f"{path}: not a coevolve run state (a JSON object); move it away to start over")
    try:
        state = RunState(**raw)
    except TypeError as err:
        raise RunDirError(f"{path}: not a coevolve run state ({err}); move it away to start over") from None
    _check_types(state, path)
    _check_completed(state, path)
    return state


def _check_completed(state: RunState, path: Path) -> None:
    """Each `completed` entry must be a phase key: `<int>/<phase name>`."""
    names = (BASE_EVAL, *PHASES)
    for key in state.completed:
        iteration, _, name = key.partition("/")
        if not (iteration.isdecimal() and iteration.isascii() and name in names):
            raise RunDirError(f"{path}: key completed holds {key[:80]!r}, not a phase key "
                              f"(<iteration>/<phase>, phase one of {', '.join(names)}); "
                              "move the file away to start over")


def read_json(path: Path, what: str) -> Any:
    """The JSON in `path`; RunDirError naming the file, the line and `what` it should be."""
    try:
        return json.loads(Path(path).read_bytes().decode("utf-8"))
    except UnicodeDecodeError as err:
        raise RunDirError(f"{path}: not UTF-8 at byte {err.start}; it should be {what}") from None
    except json.JSONDecodeError as err:
        raise RunDirError(f"{path}: not valid JSON at line {err.lineno} column {err.colno} ({err.msg}); "
                          f"it should be {what}") from None
    except RecursionError:
        raise RunDirError(f"{path}: nested too deeply; it should be {what}") from None


# RunState's fields and what each must hold (json types)
_FIELD_TYPES: dict[str, tuple[type, type | None]] = {
    "challenger_path": (str, None), "solver_path": (str, None), "completed": (list, str),
    "global_step": (int, None), "bandits": (dict, dict), "rng": (dict, None),
    "phase_seconds": (dict, float), "datasets": (dict, str), "verl_checkpoints": (dict, str),
    "part_seconds": (dict, float), "metrics": (dict, dict),
}


def _check_types(state: RunState, path: Path) -> None:
    for name, (outer, inner) in _FIELD_TYPES.items():
        value = getattr(state, name)
        items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        ok = isinstance(value, outer) and not isinstance(value, bool)
        if ok and inner is not None:
            kinds = (int, float) if inner is float else inner
            ok = all(isinstance(item, kinds) and not isinstance(item, bool) for item in items)
        if not ok:
            expected = outer.__name__ + (f" of {inner.__name__}" if inner else "")
            raise RunDirError(f"{path}: key {name} = {str(value)[:80]!r} is not a {expected}; "
                              "move the file away to start over")


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` so that readers see the old or the new file, never half
    (a failed write, e.g. a full disk, leaves the old file and no temporary file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    # the rename itself on disk, before the caller deletes what the old file named
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def write_manifest(folder: Path) -> None:
    """Record every file of a checkpoint folder with its size, to find it truncated later."""
    files = {str(p.relative_to(folder)): p.stat().st_size for p in sorted(Path(folder).rglob("*"))
             if p.is_file() and p.name != MANIFEST}
    write_atomically(Path(folder) / MANIFEST, json.dumps(files, indent=1, sort_keys=True))


def checkpoint_problems(folder: Path) -> list[str]:
    """What is wrong with a checkpoint folder against its manifest (empty: nothing)."""
    folder = Path(folder)
    if not folder.is_dir():
        return [f"{folder}: missing"]
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return [f"{folder}: no {MANIFEST} (coevolve writes one into every checkpoint it saves; a folder "
                "without it was not written by this version of coevolve, and is not loaded)"]
    try:
        entries = read_json(manifest, "a checkpoint manifest")
    except RunDirError as err:
        return [str(err)]
    if not isinstance(entries, dict):
        return [f"{manifest}: not a checkpoint manifest (a JSON object of file name: size)"]
    problems = []
    for name, size in entries.items():
        path = folder / name
        if Path(name).is_absolute() or not inside(path, folder):
            problems.append(f"{manifest}: file name {name!r} is outside the checkpoint folder")
        elif not isinstance(size, int) or isinstance(size, bool) or size < 0:
            problems.append(f"{manifest}: size of {name!r} is {size!r}, not a byte count")
        elif not path.is_file():
            problems.append(f"{path}: missing")
        elif path.stat().st_size != size:
            problems.append(f"{path}: {path.stat().st_size} bytes, {size} when saved (truncated)")
    return problems


def check_resumable(state: RunState) -> None:
    """Raise RunDirError naming every checkpoint the state needs that is missing or truncated."""
    folders = list(state.verl_checkpoints.values())
    # the roles' Hugging Face exports of this run (not the base model, which they start as)
    folders += [p for p in (state.challenger_path, state.solver_path) if "checkpoints" in Path(p).parts]
    problems = [problem for folder in dict.fromkeys(folders) for problem in checkpoint_problems(Path(folder))]
    if problems:
        raise RunDirError("the run state names checkpoints that cannot be loaded: " + "; ".join(problems)
                          + ". Restore them, or start over in a new run_dir")


# --- the solver's dataset files -----------------------------------------------------------


def save_dataset(questions: list[Question], agreements: list[float], path: Path) -> None:
    """The solver's questions as JSONL, each with the agreement of the vote that labelled it."""
    rows = [asdict(q) | {"vote_agreement": a} for q, a in zip(questions, agreements, strict=True)]
    write_atomically(path, "".join(json.dumps(row) + "\n" for row in rows))


def load_dataset(path: Path) -> tuple[list[Question], list[float]]:
    """Questions and the agreement of the vote that labelled each; a truncated or garbled
    file is a RunDirError naming the file and line."""
    try:
        lines = path.read_bytes().decode("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise RunDirError(f"{path}: cannot read the solver dataset ({type(err).__name__}: {err}); "
                          "start over in a new run_dir") from None
    questions, agreements = [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            agreements.append(float(row.pop("vote_agreement")))
            questions.append(Question(**row))
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as err:
            raise RunDirError(f"{path}, line {number}: not a solver dataset row ({type(err).__name__}: "
                              f"{str(err)[:200]}); the file is truncated or garbled: start over in a "
                              "new run_dir, or move it away with state.json's entry for it") from None
    return questions, agreements
