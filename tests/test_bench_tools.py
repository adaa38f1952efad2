"""The arithmetic of the benchmark scripts (tools/), on made-up timings."""

import importlib.util
import sys
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[1] / "tools"


def load(name):
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


STATE = {
    "phase_seconds": {"0/eval_base": 50.0, "1/challenger": 300.0, "1/dataset": 90.0, "1/solver": 200.0,
                      "1/eval": 40.0},
    "part_seconds": {"startup": 120.0, "1/challenger:votes": 110.0, "1/challenger:checkpoint": 15.0,
                     "1/solver:checkpoint": 12.0},
}


def test_iteration_parts_split_the_wall_time():
    parts = load("bench_iteration").iteration_parts(STATE, 1, wall=900.0)
    assert parts == {
        "challenger training": 175.0, "solver votes for challenger rewards": 110.0, "dataset building": 90.0,
        "solver training": 188.0, "evaluation": 40.0,
        # 900 - (175 + 110 + 90 + 188 + 40) - 50 (base evaluation, once per run)
        "everything else": 247.0,
    }
    assert "everything else" not in load("bench_iteration").iteration_parts(STATE, 1, wall=None)


def test_bench_table_judges_each_goal():
    timings = [{"workload": w, "path": p, "tokens_per_second": tps}
               for w in ("votes", "greedy evaluation")
               for p, tps in (("generate", 40.0), ("server/fast", 120.0), ("sampler/fast", 101.0))]
    results = {
        "generation": {"matmul_gflops": {"torch.mm": 100.0}, "limit_tokens_per_second": 370.0, "timings": timings,
                       "logprob_agreement": {"k3_kl": 2e-9}},
        "rollout": [{"tokens_per_second": 70.0}, {"tokens_per_second": 63.0}],
        "iteration": {"parts": {"work": 95.0, "everything else": 5.0}, "wall_seconds": 100.0,
                      "peak_pss_bytes": 3 * 2**30},
        "voting": {"comparisons": [{"setting": "s", "questions": 10, "samples_full": 100, "samples_challenger": 30,
                                    "samples_dataset": 25, "ratio_challenger": 100 / 30, "ratio_dataset": 4.0,
                                    "reward_mean_abs_diff": 0.04, "band_decisions_changed": 0.01,
                                    "labels_changed": 0.0}],
                   "informative_groups": {"group_size": 4, "questions_in_band": 0, "uniform": None,
                                          "weighted": None}},
    }
    rows = {row[0]: row for row in load("bench").table(results)}
    assert rows["rollout tokens/s, server / plain generate"][2] == ">= 0.8: met"
    assert rows["generation tokens/s, votes"][1:] == (
        "generate 40 (1.00x); server/fast 120 (3.00x); sampler/fast 101 (2.52x)", ">= 2.5x: met")
    assert rows["generation tokens/s, greedy evaluation"][2] == ""  # no goal there
    assert rows["fast rollout log-probs vs the actor's, KL (k3)"][1:] == ("2.0e-09", "< 1e-4: met")
    assert rows["generation limit (matmul GFLOP/s / FLOP per token)"][1] == "370 tokens/s (torch.mm 100 GFLOP/s)"
    assert rows["iteration: everything else"][1:] == ("5 s = 5.0%", "< 10 %: met")
    assert rows["peak memory of the run (all processes, PSS)"][1] == "3.00 GiB"
    assert rows["voting, 10 questions, m = 10 [s]"][2] == ">= 3x, < 0.05, < 2 %: met"
    results["rollout"][1]["tokens_per_second"] = 50.0
    timings[2]["tokens_per_second"] = 99.0  # sampler/fast on the votes: 2.475x
    results["voting"]["comparisons"][0]["band_decisions_changed"] = 0.05
    rows = {row[0]: row for row in load("bench").table(results)}
    assert rows["rollout tokens/s, server / plain generate"][2] == ">= 0.8: NOT met"
    assert rows["generation tokens/s, votes"][2] == ">= 2.5x: NOT met"
    assert "NOT met" in rows["voting, 10 questions, m = 10 [s]"][2]


def test_adaptive_comparison_and_split_half_informative_share():
    bench = load("bench_adaptive")
    from coevolve.domains import build_domain
    from coevolve.selfplay.adaptive import AdaptiveVoting, vote_of_prefix

    same = build_domain("arithmetic").equivalent
    answers = [["4"] * 10, ["1", "2", "1", "3", "1", "2", "1", "2", "4", "1"]]
    setting = AdaptiveVoting(first_round=4, round_size=2, confidence=0.95, reward_tolerance=0.1)
    result = bench.compare(answers, 10, setting, (0.3, 0.8), same, "s")
    # the unanimous question stops after 4 answers for the reward (leader settled), and its
    # reward is 0 either way; the split one runs to 10
    assert (result.samples_full, result.samples_challenger) == (20, 14)
    assert result.reward_mean_abs_diff == 0.0
    assert result.band_decisions_changed == 0.0 and result.labels_changed == 0.0
    votes = [vote_of_prefix(a, 10, same) for a in answers]
    info = bench.split_half_informative(answers, votes, (0.3, 0.8), 4, same)
    # only the split question is kept (5 of 10 say "1"); first half 3/5 "1", second half 2/5
    assert info["questions_in_band"] == 1
    assert info["uniform"] == info["weighted"] == pytest.approx(1 - 0.4**4 - 0.6**4)


def test_iteration_memory_table(capsys):
    gib = 2**30
    memory = {  # as coevolve/run/loop.py writes <run_dir>/logs/memory.json
        "startup": {"peak_pss_bytes": 7 * gib, "peak_machine_used_bytes": 9 * gib, "peak_pss_bytes_per_process": {}},
        "1/solver": {"peak_pss_bytes": 12 * gib, "peak_machine_used_bytes": 14 * gib,
                     "peak_pss_bytes_per_process": {}},
        "run": {"peak_pss_bytes": 12 * gib, "peak_machine_used_bytes": 14 * gib,
                "peak_pss_bytes_per_process": {"ray::HFRolloutServer [8]": 3 * gib, "ray::WorkerDict [7]": 4 * gib}},
    }
    load("bench_iteration").print_memory(memory)
    out = capsys.readouterr().out
    assert "(PSS): 12.00 GiB; machine used at most 14.00 GiB" in out
    assert "1/solver         peak PSS  12.00 GiB" in out and "run " not in out.split("largest")[0].split("GiB;")[1]
    assert out.index("ray::WorkerDict [7]") < out.index("ray::HFRolloutServer [8]")  # largest first
