"""`make bench`: coevolve's performance table, every row measured in this one run.

Runs each benchmark in its own process, one after the other (none competes for the CPU), and
prints one table from their JSON; BENCHES lists them with the script that measures each
(generation, rollout, iteration, repetition, filter, voting, and TRL when `.venv-trl` exists).

    python tools/bench.py --out runs/bench
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
TRL_PYTHON = REPO / ".venv-trl" / "bin" / "python"  # tools/bench_trl.py's default --trl-python

# One default-recipe iteration with fewer steps and questions: the same code and shapes per
# step, about a third of the work (a full default iteration's time and its shares:
# `tools/bench_iteration.py --from-run runs/arithmetic-cpu`, docs/results.md). The band is opened so
# that the few questions always leave the solver something to train on (the band is applied
# after the votes, so the work measured is the same).
ITERATION_OVERRIDES = ["challenger.steps=1", "solver.steps=1", "dataset.questions=24", "dataset.band_low=0.0",
                       "dataset.band_high=1.0", "eval.per_category=2"]

# Each generation path must reach this multiple of transformers.generate's tokens/s on the
# rollouts and the votes (the goal set for the fast engine).
GENERATION_GOAL = 2.5
GENERATION_GOAL_WORKLOADS = ("votes", "solver rollout", "challenger rollout")

BENCHES = {
    # tokens/s of every CPU generation path against plain `transformers.generate`
    "generation": ["tools/bench_generation.py", "--questions", "32"],
    # the rollout server inside verl's interface against batched `transformers.generate`
    "rollout": ["tools/bench_rollout.py", "--prompts", "8", "--n", "4", "--max-new-tokens", "64",
                "--batch", "64", "--repeats", "2"],
    # R-Zero's repetition penalty and the dataset filter on 8,000 questions
    "repetition": ["tools/bench_repetition.py", "--n", "8000", "--seed", "0"],
    "filter": ["tools/bench_filter.py", "--n", "8000", "--seed", "0"],
    # adaptive against full voting on the same answers
    "voting": ["tools/bench_adaptive.py", "--per-category", "3", "--samples", "10"],
    # time shares and peak memory of one iteration, shortened so the table fits in 15 minutes
    "iteration": ["tools/bench_iteration.py", *ITERATION_OVERRIDES],
    # one solver GRPO step against TRL's GRPOTrainer on the same questions (needs .venv-trl)
    "trl": ["tools/bench_trl.py"],
}

# coevolve's solver step against TRL's GRPOTrainer on the same questions and settings.
TRL_GOAL = 2.0


def runnable(names: list[str], trl_ready: bool) -> tuple[list[str], list[str]]:
    """The benchmarks to run of `names`, and a one-line note for each one skipped."""
    if "trl" in names and not trl_ready:
        return ([n for n in names if n != "trl"],
                [f"trl: skipped, {TRL_PYTHON.relative_to(REPO)} is missing (`make bench-trl` builds "
                 "TRL's environment, gigabytes, and runs it)"])
    return list(names), []


def run_bench(name: str, out: Path) -> tuple[dict | list, float]:
    path = out / f"{name}.json"
    command = [PYTHON, *BENCHES[name], "--json", str(path)]
    print(f"\n=== {name}: {' '.join(command[1:])}", flush=True)
    start = time.monotonic()
    subprocess.run(command, cwd=REPO, check=True)
    return json.loads(path.read_text()), time.monotonic() - start


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB, Python {platform.python_version()}"


def table(results: dict) -> list[tuple[str, str, str]]:
    """(row, measured, goal and verdict) for every measurement."""
    rows = []
    if "generation" in results:
        rows += generation_rows(results["generation"])
    if "rollout" in results:
        plain, server = results["rollout"][0], results["rollout"][1]
        ratio = server["tokens_per_second"] / plain["tokens_per_second"]
        rows.append(("rollout tokens/s, server / plain generate",
                     f"{server['tokens_per_second']:.1f} / {plain['tokens_per_second']:.1f} = {ratio:.2f}",
                     f">= 0.8: {'met' if ratio >= 0.8 else 'NOT met'}"))
    if "iteration" in results:
        it = results["iteration"]
        parts = it["parts"]
        total = sum(parts.values())
        for name, seconds in parts.items():
            goal = ""
            if name == "everything else":
                goal = f"< 10 %: {'met' if seconds / total < 0.10 else 'NOT met'}"
            rows.append((f"iteration: {name}", f"{seconds:.0f} s = {seconds / total:.1%}", goal))
        rows.append(("iteration wall (incl. base eval)", f"{it['wall_seconds']:.0f} s", ""))
        rows.append(("peak memory of the run (all processes, PSS)", f"{it['peak_pss_bytes'] / 2**30:.2f} GiB", ""))
    if "trl" in results:
        rows += trl_rows(results["trl"])
    if "repetition" in results:
        rep = results["repetition"]
        rows.append((f"repetition penalty, {rep['questions']} questions", f"{rep['seconds']:.2f} s", ""))
    if "filter" in results:
        fil = results["filter"]
        rows.append((f"dataset filter, {fil['questions']} questions", f"{fil['seconds']:.1f} s",
                     f"< 60 s: {'met' if fil['seconds'] < 60 else 'NOT met'}"))
    if "voting" in results:
        v = results["voting"]
        for c in v["comparisons"]:
            met = (min(c["ratio_challenger"], c["ratio_dataset"]) >= 3 and c["reward_mean_abs_diff"] < 0.05
                   and c["band_decisions_changed"] < 0.02)
            labels = "n/a" if c["labels_changed"] is None else f"{c['labels_changed']:.1%}"
            rows.append((f"voting, {c['questions']} questions, m = {c['samples_full'] // c['questions']} "
                         f"[{c['setting']}]",
                         f"samples {c['samples_full']} -> {c['samples_challenger']} (challenger, "
                         f"{c['ratio_challenger']:.2f}x) / {c['samples_dataset']} (dataset, "
                         f"{c['ratio_dataset']:.2f}x); |reward diff| {c['reward_mean_abs_diff']:.3f}; "
                         f"band changed {c['band_decisions_changed']:.1%}; labels changed {labels}",
                         f">= 3x, < 0.05, < 2 %: {'met' if met else 'NOT met'}"))
        info = v["informative_groups"]
        if info["uniform"] is not None:
            rows.append((f"informative solver groups (G={info['group_size']}, {info['questions_in_band']} "
                         "kept questions; weights from half the answers, judged on the other half)",
                         f"uniform {info['uniform']:.1%} -> weighted {info['weighted']:.1%}", ""))
    return rows


def trl_rows(trl: dict) -> list[tuple[str, str, str]]:
    """One row per system (seconds per step, share of the FLOP floor) and the speed-up."""
    rows = [(f"solver GRPO step, {s['system']}",
             f"{s['step_seconds']:.1f} s, {s['tokens_per_step']:.0f} tokens, {s['share_of_floor']:.1%} of the "
             f"FLOP floor ({s['floor_seconds']:.1f} s)", "") for s in trl["systems"]]
    speedup = trl["coevolve_speedup_over_trl"]
    rows.append(("solver GRPO step, coevolve vs TRL", f"{speedup:.2f}x faster",
                 f">= {TRL_GOAL:g}x: {'met' if speedup >= TRL_GOAL else 'NOT met'}"))
    return rows


def generation_rows(gen: dict) -> list[tuple[str, str, str]]:
    """One row per workload: tokens/s of each path and its ratio to generate; the limit."""
    rates = ", ".join(f"{k} {v:.0f}" for k, v in gen["matmul_gflops"].items())
    rows = [("generation limit (matmul GFLOP/s / FLOP per token)",
             f"{gen['limit_tokens_per_second']:.0f} tokens/s ({rates} GFLOP/s)", "")]
    workloads = dict.fromkeys(t["workload"] for t in gen["timings"])
    for workload in workloads:
        timings = {t["path"]: t["tokens_per_second"] for t in gen["timings"] if t["workload"] == workload}
        base = timings["generate"]
        shown = "; ".join(f"{path} {tps:.0f} ({tps / base:.2f}x)" for path, tps in timings.items())
        goal = ""
        if workload in GENERATION_GOAL_WORKLOADS:
            worst = min(timings["server/fast"], timings["sampler/fast"]) / base
            goal = f">= {GENERATION_GOAL}x: {'met' if worst >= GENERATION_GOAL else 'NOT met'}"
        rows.append((f"generation tokens/s, {workload}", shown, goal))
    if "logprob_agreement" in gen:
        kl = gen["logprob_agreement"]["k3_kl"]
        rows.append(("fast rollout log-probs vs the actor's, KL (k3)", f"{kl:.1e}",
                     f"< 1e-4: {'met' if kl < 1e-4 else 'NOT met'}"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench", help="where the JSON results go")
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHES), help="run only these benchmarks")
    args = parser.parse_args()
    results, seconds = {}, {}
    names, notes = runnable(list(args.only or BENCHES), trl_ready=TRL_PYTHON.is_file())
    for note in notes:
        print(note, flush=True)
    for name in names:
        results[name], seconds[name] = run_bench(name, args.out)
    rows = table(results)
    print(f"\n## coevolve benchmark\nmachine: {machine()}\n"
          f"benchmark wall time: {', '.join(f'{k} {v:.0f} s' for k, v in seconds.items())}, "
          f"total {sum(seconds.values()) / 60:.1f} min\n")
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    print(f"| {'measurement':<{widths[0]}} | {'result':<{widths[1]}} | {'goal':<{widths[2]}} |")
    print(f"|{'-' * (widths[0] + 2)}|{'-' * (widths[1] + 2)}|{'-' * (widths[2] + 2)}|")
    for row in rows:
        print(f"| {row[0]:<{widths[0]}} | {row[1]:<{widths[1]}} | {row[2]:<{widths[2]}} |")
    for note in notes:
        print(note)
    (args.out / "table.md").write_text("\n".join(f"| {' | '.join(r)} |" for r in rows) + "\n")


if __name__ == "__main__":
    main()
