"""Where the time of one co-evolution iteration goes, and the run's peak memory.

Runs `coevolve train RECIPE iterations=1 ...` in a fresh run directory, samples the memory
(PSS) of the whole process tree every half second, and splits the wall time with the timings
the run commits to `state.json` (`iteration_parts`; "everything else" is start-up, checkpoints
and shutdown). The base model's evaluation runs once per run, so it is shown but left out of
the iteration's shares. `--from-run DIR` prints the same table for a finished run.

    python tools/bench_iteration.py --json /tmp/iteration.json challenger.steps=1 solver.steps=1
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]

from coevolve.recipe.load import DEFAULT_RECIPE


class PeakMemory:
    """Largest total PSS of a process and all its descendants, sampled in a thread.

    PSS (proportional set size) splits each shared page among the processes mapping it;
    summed RSS would count Ray's shared object store and the shared libraries once per
    process (it read 19.3 GiB for this run on a 24 GiB machine).
    """

    def __init__(self, pid: int, interval: float = 1.0) -> None:
        self.pid, self.interval, self.peak = pid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _tree_pss(self.pid))
            self._stop.wait(self.interval)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def _tree_pss(pid: int) -> int:
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for process in processes:
        try:
            total += _pss(process.pid)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue  # a process that ended between listing and reading holds no memory
    return total


def _pss(pid: int) -> int:
    """PSS in bytes from /proc/<pid>/smaps_rollup: summed by the kernel, so cheap to read
    (psutil's memory_full_info parses every mapping and slowed the measured run down)."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/{pid}/smaps_rollup has no Pss line")


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


def run(recipe: str, overrides: list[str], run_dir: Path) -> tuple[float, int, dict]:
    command = [str(REPO / ".venv" / "bin" / "coevolve"), "train", recipe, f"run_dir={run_dir}",
               "iterations=1", *overrides]
    print("running:", " ".join(command), flush=True)
    start = time.monotonic()
    process = subprocess.Popen(command, cwd=REPO)
    memory = PeakMemory(process.pid)
    code = process.wait()
    wall = time.monotonic() - start
    peak = memory.stop()
    if code != 0:
        raise SystemExit(f"coevolve train exited with {code}")
    return wall, peak, json.loads((run_dir / "state.json").read_text())


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
        wall, peak, state = run(args.recipe, args.overrides, Path(tmp) / "run")
    parts = iteration_parts(state, 1, wall)
    print_parts(parts, state, f"one iteration of {args.recipe} {' '.join(args.overrides)} (wall {wall:.0f} s):")
    print(f"  peak memory of the run's processes (PSS): {peak / 2**30:.2f} GiB")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"wall_seconds": wall, "peak_pss_bytes": peak, "parts": parts,
                                         "overrides": args.overrides, "state": state}, indent=2))


if __name__ == "__main__":
    main()
