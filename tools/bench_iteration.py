"""Where the time of one co-evolution iteration goes, and the run's peak memory.

Runs `coevolve train RECIPE iterations=1 ...` in a fresh run directory, prints the peak memory
the run sampled of its whole process tree (`<run_dir>/logs/memory.json`, PSS per phase and per
process), and splits the wall time with the timings the run commits to `state.json`
(`iteration_parts`; "everything else" is start-up, checkpoints and shutdown). The base model's
evaluation runs once per run, so it is shown but left out of the iteration's shares.
`--from-run DIR` prints the same table for a finished run.

    python tools/bench_iteration.py --json /tmp/iteration.json challenger.steps=1 solver.steps=1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

from coevolve.measure.memory import GIB, format_processes
from coevolve.recipe.load import DEFAULT_RECIPE


def iteration_parts(state: dict, iteration: int, wall: float | None) -> dict[str, float]:
    """Seconds per part of `iteration`: challenger training (less the solver votes inside it and its
    checkpoint), the votes, the dataset, solver training (less its checkpoint), the evaluation;
    `wall` adds "everything else" (wall less all of them and the base model's evaluation)."""
    phase, part = state["phase_seconds"], state.get("part_seconds", {})
    key = f"{iteration}/"
    votes = part.get(f"{key}challenger:votes", 0.0)
    parts = {
        "challenger training": phase[f"{key}challenger"] - votes - part.get(f"{key}challenger:checkpoint", 0.0),
        "solver votes for challenger rewards": votes,
        "dataset building": phase[f"{key}dataset"],
        "solver training": phase[f"{key}solver"] - part.get(f"{key}solver:checkpoint", 0.0),
        "evaluation": phase[f"{key}eval"],
    }
    if wall is not None:
        parts["everything else"] = wall - sum(parts.values()) - phase.get("0/eval_base", 0.0)
    return parts


def print_parts(parts: dict[str, float], state: dict, title: str) -> None:
    total = sum(parts.values())
    print(title)
    for name, seconds in parts.items():
        print(f"  {name:<38} {seconds:>8.1f} s {seconds / total:>6.1%}")
    print(f"  {'iteration':<38} {total:>8.1f} s")
    extra = {k: v for k, v in state.get("part_seconds", {}).items() if k == "startup" or k.endswith("checkpoint")}
    base = state["phase_seconds"].get("0/eval_base")
    print(f"  (inside the parts: {extra}; base-model evaluation, once per run: {base} s)")


def run(recipe: str, overrides: list[str], run_dir: Path) -> tuple[float, dict, dict]:
    """Wall seconds, the run's memory log (coevolve/run/loop.py samples its own process tree) and state."""
    # this checkout's coevolve (the venv's console script may belong to another checkout)
    command = [sys.executable, "-m", "coevolve.cli", "train", recipe, f"run_dir={run_dir}",
               "iterations=1", *overrides]
    print("running:", " ".join(command), flush=True)
    start = time.monotonic()
    code = subprocess.run(command, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}).returncode
    wall = time.monotonic() - start
    if code != 0:
        raise SystemExit(f"coevolve train exited with {code}")
    memory = json.loads((run_dir / "logs" / "memory.json").read_text())
    return wall, memory, json.loads((run_dir / "state.json").read_text())


def print_memory(memory: dict) -> None:
    """The run's peaks: the whole tree and the machine per window (phase), and each process."""
    total = memory["run"]
    print(f"  peak memory of the run's processes (PSS): {total['peak_pss_bytes'] / GIB:.2f} GiB; "
          f"machine used at most {total['peak_machine_used_bytes'] / GIB:.2f} GiB")
    for window, peaks in memory.items():
        if window != "run":
            print(f"    {window:<16} peak PSS {peaks['peak_pss_bytes'] / GIB:6.2f} GiB, "
                  f"machine used {peaks['peak_machine_used_bytes'] / GIB:6.2f} GiB")
    print("  largest processes (peak PSS each over the run, not at the same moment):")
    print(format_processes(sorted(total["peak_pss_bytes_per_process"].items(), key=lambda row: -row[1])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(DEFAULT_RECIPE))
    parser.add_argument("--from-run", type=Path, help="only print the table of this finished run")
    parser.add_argument("--json", type=Path)
    parser.add_argument("overrides", nargs="*", help="key=value recipe overrides")
    args = parser.parse_args()
    if args.from_run:
        state = json.loads((args.from_run / "state.json").read_text())
        iterations = sorted({int(k.split("/")[0]) for k in state["phase_seconds"]} - {0})
        for i in iterations:
            print_parts(iteration_parts(state, i, None), state, f"{args.from_run}, iteration {i}:")
        return
    with tempfile.TemporaryDirectory(prefix="coevolve-bench-") as tmp:
        wall, memory, state = run(args.recipe, args.overrides, Path(tmp) / "run")
    parts = iteration_parts(state, 1, wall)
    print_parts(parts, state, f"one iteration of {args.recipe} {' '.join(args.overrides)} (wall {wall:.0f} s):")
    print_memory(memory)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"wall_seconds": wall, "peak_pss_bytes": memory["run"]["peak_pss_bytes"],
                                         "memory": memory, "parts": parts,
                                         "overrides": args.overrides, "state": state}, indent=2))


if __name__ == "__main__":
    main()
