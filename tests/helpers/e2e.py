"""Helpers of the end-to-end tests: the tiny run's overrides, starting `coevolve train` in its own
process group, waiting on it, and reading its TensorBoard tags and weights."""


import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REQUIRED_TAGS = [
    "challenger/reward_mean", "challenger/uncertainty_reward_mean", "challenger/repetition_penalty_mean",
    "challenger/format_valid_rate", "dataset/questions_generated", "dataset/questions_kept",
    "solver/reward_mean", "solver/pseudo_label_accuracy", "eval/accuracy",
    "curriculum/q/short", "curriculum/q/long", "curriculum/prob/short", "curriculum/prob/long",
    "eval/accuracy/short", "eval/accuracy/long",
    "eval/majority_vote_accuracy", "eval/in_band_label_accuracy",  # label quality without an oracle
    "verl/challenger/actor/pg_loss", "verl/solver/actor/pg_loss",  # verl's own metrics, out of the way
]


def overrides(model: Path, run_dir: Path) -> list[str]:
    return [
        f"model.path={model}", "model.source=none", "model.dtype=float32", "name=e2e",
        "resources.device=cpu", "resources.rollout=hf",
        "domain.name=helpers.toy_domain:ToyDomain", f"run_dir={run_dir}", "iterations=1", "seed=3",
        "challenger.steps=1", "challenger.batch_size=2", "challenger.group_size=2",
        "challenger.max_new_tokens=12", "challenger.max_prompt_tokens=64", "challenger.micro_batch_size=4",
        "challenger.lr=1e-3", "solver.lr=1e-3",
        "solver.steps=1", "solver.batch_size=2", "solver.group_size=2", "solver.max_new_tokens=8",
        "solver.max_prompt_tokens=96", "solver.micro_batch_size=4",
        "vote.samples=3", "vote.max_new_tokens=8", "dataset.questions=6",
        "dataset.band_low=0.0", "dataset.band_high=1.0", "dataset.min_words=1", "dataset.max_rouge_l=1.0",
        "eval.per_category=2", "eval.max_new_tokens=8", "resources.cpu_threads=1",
    ]


def start(model: Path, run_dir: Path, log: Path, recipe: Path = REPO / "recipes/base.yaml",
          settings: list[str] | None = None) -> subprocess.Popen:
    """`coevolve train recipe settings` (default: base.yaml with `overrides`) in its own group."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "tests"), str(REPO)]))
    command = [sys.executable, "-m", "coevolve.cli", "train", str(recipe),
               *(overrides(model, run_dir) if settings is None else settings)]
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def wait_for(condition, process: subprocess.Popen, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"run exited early with {process.returncode}:\n{log.read_text()[-4000:]}")
        if time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail(f"timed out:\n{log.read_text()[-4000:]}")
        time.sleep(0.2)


def tensorboard_tags(run_dir: Path) -> tuple[dict[str, list[int]], set[str]]:
    """Steps of every scalar tag, and the histogram and text tags (purged events excluded)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    tags = acc.Tags()
    scalars = {tag: [e.step for e in acc.Scalars(tag)] for tag in tags["scalars"]}
    return scalars, set(tags["histograms"]) | set(tags["tensors"])


def weights(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))
