"""`coevolve eval` end to end: a tiny random model on the toy domain, in a subprocess.

The checkpoint sits where a run puts its solver after iteration 2, so the outputs are named
`iter_002_solver` and the TensorBoard scalars sit at step 2. Checks the JSON and markdown
tables, the TensorBoard scalars and their numbers of questions, and that a rerun gives the
same table.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
PER_CATEGORY = 3  # the toy domain has two categories, short and long: 6 questions
K = 3


def run_eval(checkpoint: Path, run_dir: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "tests"), str(REPO)]))
    command = [sys.executable, "-m", "coevolve.cli", "eval", str(checkpoint),
               "--recipe", str(REPO / "recipes/base.yaml"), "domain.name=helpers.toy_domain:ToyDomain",
               f"run_dir={run_dir}", "resources.device=cpu", "resources.rollout=hf", "model.dtype=float32",
               "resources.cpu_threads=1", f"eval.per_category={PER_CATEGORY}", "eval.max_new_tokens=8",
               f"eval.samples={K}", "vote.batch_size=8"]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_eval_writes_json_markdown_and_tensorboard(tmp_path):
    from helpers.tiny_model import build_tiny_model

    run_dir = tmp_path / "run"
    checkpoint = build_tiny_model(run_dir / "checkpoints" / "iter_002" / "solver")
    done = run_eval(checkpoint, run_dir)
    assert done.returncode == 0, done.stderr[-4000:]

    table = json.loads((run_dir / "eval/checkpoints/iter_002_solver.json").read_text())
    rows = {(r["set"], r["category"]): r for r in table["rows"]}
    assert set(rows) == {("toy", "short"), ("toy", "long"), ("all", "all")}
    assert [rows[key]["questions"] for key in sorted(rows)] == [6, PER_CATEGORY, PER_CATEGORY]
    assert table["k"] == K and len(table["questions"]) == 6
    total = rows[("all", "all")]
    assert total["greedy_correct"] == sum(q["greedy_correct"] for q in table["questions"])
    assert total["majority_correct"] == sum(q["majority_correct"] for q in table["questions"])

    markdown = (run_dir / "eval/checkpoints/iter_002_solver.md").read_text()
    assert f"| majority-of-{K} accuracy |" in markdown and "| toy | short | 3 |" in markdown
    assert markdown.strip().splitlines()[-1] in done.stdout  # the table is printed too

    events = scalars(run_dir / "tensorboard/eval_checkpoint/iter_002_solver")
    assert events["eval_checkpoint/questions"] == [(2, 6.0)]
    assert events["eval_checkpoint/questions/category/short"] == [(2, float(PER_CATEGORY))]
    assert events["eval_checkpoint/greedy_accuracy"] == [(2, pytest.approx(total["greedy_accuracy"]))]
    assert events[f"eval_checkpoint/majority_of_{K}_accuracy/set/toy/long"] == [
        (2, pytest.approx(rows[("toy", "long")]["majority_accuracy"]))]

    again = run_eval(checkpoint, run_dir)  # same seed, same table; TensorBoard replaced
    assert again.returncode == 0, again.stderr[-4000:]
    assert json.loads((run_dir / "eval/checkpoints/iter_002_solver.json").read_text()) == table
    assert scalars(run_dir / "tensorboard/eval_checkpoint/iter_002_solver")["eval_checkpoint/questions"] == [(2, 6.0)]
