"""The arithmetic of the benchmark scripts (tools/), on made-up timings."""

import subprocess
import sys

import pytest

from helpers.tools import TOOLS
from helpers.tools import load_tool as load

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
    result = bench.compare(answers, m=10, adaptive=setting, band=(0.3, 0.8), equivalent=same, setting="s")
    # the unanimous question stops after 4 answers for the reward (leader settled), and its
    # reward is 0 either way; the split one runs to 10
    assert (result.samples_full, result.samples_challenger) == (20, 14)
    assert result.reward_mean_abs_diff == 0.0
    assert result.band_decisions_changed == 0.0 and result.labels_changed == 0.0
    votes = [vote_of_prefix(a, 10, same) for a in answers]
    info = bench.split_half_informative(answers, votes, band=(0.3, 0.8), group_size=4, equivalent=same)
    # only the split question is kept (5 of 10 say "1"); first half 3/5 "1", second half 2/5
    assert info["questions_in_band"] == 1
    assert info["uniform"] == info["weighted"] == pytest.approx(1 - 0.4**4 - 0.6**4)


def test_trl_comparison_against_the_flop_floor():
    trl = load("bench_trl")
    # 1e8 weights, 100 GFLOP/s: a 5,000-token step's floor is 8 * 1e8 * 5000 / 1e11 = 40 s
    measured = {"step_seconds": [90.0, 80.0, 100.0], "tokens": [4000.0, 5000.0, 5000.0]}
    row = trl.summarise("trl", measured, weights=1e8, gflops=100.0)
    assert row["step_seconds"] == 90.0  # median after the warm-up step: (80, 100)
    assert row["tokens_per_step"] == 5000.0
    assert row["floor_seconds"] == pytest.approx(40.0)
    assert row["share_of_floor"] == pytest.approx(40.0 / 90.0)
    fast = trl.summarise("coevolve", {"step_seconds": [50.0, 40.0, 50.0], "tokens": [5000.0] * 3},
                         weights=1e8, gflops=100.0)
    results = {"trl": {"systems": [row, fast], "coevolve_speedup_over_trl": 90.0 / 45.0}}
    rows = {r[0]: r for r in load("bench").table(results)}
    assert rows["solver GRPO step, coevolve vs TRL"][1:] == ("2.00x faster", ">= 2x: met")
    assert rows["solver GRPO step, trl"][1].startswith("90.0 s, 5000 tokens, 44.4% of the FLOP floor")
    results["trl"]["coevolve_speedup_over_trl"] = 1.9
    assert load("bench").table(results)[-1][2] == ">= 2x: NOT met"


def test_trl_bench_questions_are_the_recipes_categories_interleaved():
    trl = load("bench_trl")
    recipe, domain, questions = trl.load(str(TOOLS.parent / "recipes" / "arithmetic-cpu.yaml"), [])
    assert len(questions) == trl.QUESTIONS
    trained = list(recipe.domain.categories)
    assert [q.category for q in questions[: len(trained)]] == trained
    assert all(q.answer for q in questions)  # true answers: the labels of the coevolve side
    assert recipe.solver.batch_size * recipe.solver.group_size == trl.QUESTIONS * trl.GROUP


@pytest.mark.parametrize("warmup, calls", [
    (True, 4),  # one untimed warm-up call, then 3 timed
    (False, 3),  # timed calls only
])
def test_best_seconds_is_the_fastest_timed_call(monkeypatch, warmup, calls):
    timing = load("timing")
    clock = iter([0.0, 5.0, 10.0, 12.0, 20.0, 23.0])  # timed calls of 5, 2 and 3 seconds
    monkeypatch.setattr(timing.time, "perf_counter", lambda: next(clock))
    made = []
    assert timing.best_seconds(lambda: made.append(1), 3, warmup=warmup) == 2.0
    assert len(made) == calls


@pytest.mark.parametrize("names, trl_ready, runs, skipped", [
    (["generation", "trl"], False, ["generation"], 1),  # no .venv-trl: the TRL row is skipped with a note
    (["generation", "trl"], True, ["generation", "trl"], 0),  # TRL's environment is there: it runs
    (["generation"], False, ["generation"], 0),  # TRL not asked for: nothing to say
])
def test_bench_skips_trl_without_its_environment(names, trl_ready, runs, skipped):
    got, notes = load("bench").runnable(names, trl_ready)
    assert got == runs and len(notes) == skipped
    assert all("make bench-trl" in note and ".venv-trl" in note for note in notes)


def test_trl_speedup_is_by_system_name_not_row_order():
    trl = load("bench_trl")
    rows = [{"system": "coevolve", "step_seconds": 45.0}, {"system": "trl", "step_seconds": 90.0}]
    assert trl.speedup_over_trl(rows) == trl.speedup_over_trl(rows[::-1]) == 2.0


@pytest.mark.parametrize("text, answer, matches", [
    ("so the total is 1,234.", "1234", True),  # commas read as coevolve reads them
    ("3 apples and then 12", "12", True),  # the last number
    ("12 then 3", "12", False),  # not the last
    ("no number", "1", False),  # nothing to read
])
def test_trl_reward_reads_the_answer_as_coevolve_does(text, answer, matches):
    assert load("bench_trl").answer_matches(text, answer) is matches


def test_the_answer_helpers_import_only_the_standard_library():
    # The TRL environment has no coevolve dependencies: importing them must load nothing else.

    code = ("import sys; before = set(sys.modules); import coevolve.domains.answers; "
            "new = {m.split('.')[0] for m in set(sys.modules) - before}; "
            "print(sorted(new - set(sys.stdlib_module_names) - {'coevolve'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=TOOLS.parent)
    assert done.stdout.strip() == "[]"


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


def test_measure_command_sees_a_child_processs_memory_and_exit_status():
    measure = load("measure_command").measure
    # the child holds 200 MiB for 0.6 s and exits 3: both must come back
    script = "import subprocess, sys, time; x = bytearray(200 << 20); time.sleep(0.6); sys.exit(3)"
    result = measure([sys.executable, "-c", script], interval=0.1)
    assert result["returncode"] == 3
    assert 0.19 <= result["peak_tree_pss_gb"] < 1.0
    assert result["seconds"] >= 0.6


def test_challenger_bench_holds_the_earlier_prompt_against_the_recipes():
    from coevolve.recipe.load import DEFAULT_RECIPE, load_recipe

    recipe = load_recipe(DEFAULT_RECIPE, [])
    variants = load("bench_challenger").variants(recipe)
    assert [v.prompt for v in variants] == ["examples", "examples", "examples", None]  # None: the recipe's
    assert [v.shown for v in variants[:3]] == [3, 3, 3] and variants[3].shown is None
    assert recipe.domain.options["challenger_prompt"] in variants[3].name
