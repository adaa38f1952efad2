"""`coevolve probe` end to end on a tiny random model: the generic domain (capitals recipe)
and a bad temperature list. Slow: it loads a model (seconds, no verl or Ray)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from coevolve import cli

REPO = Path(__file__).resolve().parents[1]


def test_bad_temperatures_exit_2_before_a_model_is_loaded(tmp_path, capsys):
    code = cli.main(["probe", str(REPO / "recipes/capitals-cpu.yaml"), f"run_dir={tmp_path}",
                     "--model", str(tmp_path), "--temperatures", "0.5,hot"])
    assert code == 2
    assert "'hot' is not a temperature > 0" in capsys.readouterr().err


def test_missing_model_exits_2(tmp_path, capsys):
    code = cli.main(["probe", str(REPO / "recipes/capitals-cpu.yaml"), f"run_dir={tmp_path}",
                     "--model", str(tmp_path / "nope")])
    assert code == 2 and "no such directory" in capsys.readouterr().err


@pytest.mark.slow
def test_probe_writes_table_json_and_plot_for_the_generic_domain(tmp_path):
    from helpers.tiny_model import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny")
    run_dir = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    command = [sys.executable, "-m", "coevolve.cli", "probe", str(REPO / "recipes/capitals-cpu.yaml"),
               f"run_dir={run_dir}", "model.source=none", "resources.cpu_threads=1", "eval.per_category=2",
               "eval.dev_per_category=2", "eval.max_new_tokens=6", "vote.max_new_tokens=6", "vote.batch_size=16",
               "--model", str(model), "--temperatures", "0.5,1.0", "--samples", "3"]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((run_dir / "probe" / "probe.json").read_text())
    assert report["settings"]["split"] == "dev" and report["settings"]["samples"] == 3
    cells = {(c["temperature"], c["category"]) for c in report["cells"]}
    categories = {c["category"] for c in report["cells"]} - {"all"}
    assert cells == {(t, c) for t in (0.5, 1.0) for c in categories | {"all"}} and len(categories) >= 2
    for cell in report["cells"]:  # 2 dev questions per category, 3 votes each
        if cell["category"] != "all":
            assert cell["questions"] == 2 and sum(cell["agreement_counts"]) == 2
    assert len(report["answers"]["0.5"][0]["sampled"]) == 3
    assert "| T | category |" in done.stdout and "recommendation" in done.stdout
    assert (run_dir / "probe" / "probe.png").read_bytes()[:4] == b"\x89PNG"
