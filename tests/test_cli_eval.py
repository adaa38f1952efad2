"""`coevolve eval` argument handling: bad input exits 2 naming the fix; overrides reach the recipe.

No model is loaded: errors are raised before, and the evaluation itself is replaced by a stub.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from coevolve import cli
from coevolve.backend.commands import evaluate as eval_checkpoint
from coevolve.domains import register_domain
from coevolve.domains.arithmetic import ArithmeticDomain
from coevolve.records import Question

REPO = Path(__file__).resolve().parents[1]
BASE = str(REPO / "recipes" / "base.yaml")
CPU = ["resources.device=cpu", "resources.rollout=hf"]


@register_domain("test-cli-eval-no-heldout")  # registered once, at import
class NoHeldout(ArithmeticDomain):
    def heldout(self, per_category: int, seed: int) -> list[Question]:
        return []


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    return tmp_path / "model"


@pytest.mark.parametrize(
    "args, expected",
    [
        # a checkpoint path that does not exist
        (["eval", "{tmp}/nope", "--recipe", BASE, *CPU], "checkpoint {tmp}/nope: no such directory"),
        # a folder that is not a Hugging Face model
        (["eval", "{tmp}", "--recipe", BASE, *CPU], "no config.json"),
        # k < 1, given after the flags
        (["eval", "{model}", "--recipe", BASE, *CPU, "eval.samples=0"], "eval.samples = 0: invalid"),
        # a domain with no held-out questions
        (["eval", "{model}", "--recipe", BASE, *CPU, "domain.name=test-cli-eval-no-heldout"],
         "no-heldout has no held-out questions"),
        # a label that would not be a plain file name
        (["eval", "{model}", "--recipe", BASE, *CPU, "--label", "a/b"], "label 'a/b': invalid"),
        # a label that would name the folder above its own
        (["eval", "{model}", "--recipe", BASE, *CPU, "--label", ".."], "label '..': invalid"),
        # a recipe that does not exist
        (["eval", "{model}", "--recipe", "{tmp}/missing.yaml"], "missing.yaml: recipe file does not exist"),
    ],
)
def test_bad_input_exits_2_with_a_message(tmp_path, model_dir, capsys, args, expected):
    def fill(text: str) -> str:
        return text.format(tmp=tmp_path, model=model_dir)

    assert cli.main([fill(a) for a in args]) == 2
    assert fill(expected) in capsys.readouterr().err


def test_unknown_flag_is_a_usage_error(model_dir):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["eval", str(model_dir), "--recipe", BASE, "--greedy"])
    assert exit_info.value.code == 2


def test_overrides_after_flags_and_label_reach_the_evaluation(model_dir, monkeypatch, capsys):
    calls = []

    class Result:
        def markdown(self) -> str:
            return "| table |\n"

    def fake(recipe, checkpoint, label):
        calls.append((recipe, checkpoint, label))
        return Result(), eval_checkpoint.EvalOutputs(Path("j"), Path("m"), Path("t"))

    monkeypatch.setattr(eval_checkpoint, "evaluate_checkpoint", fake)
    code = cli.main(["eval", str(model_dir), "--recipe", BASE, "--label", "base_model", *CPU,
                     "eval.samples=3", "run_dir=/tmp/somewhere"])
    assert code == 0
    recipe, checkpoint, label = calls[0]
    assert (recipe.eval.samples, recipe.run_dir, checkpoint, label) == (3, "/tmp/somewhere", model_dir, "base_model")
    assert "| table |" in capsys.readouterr().out



@pytest.mark.parametrize("verbose", [False, True])
def test_eval_is_as_quiet_as_train_unless_verbose(tmp_path, monkeypatch, capfd, verbose):
    import os
    from types import SimpleNamespace

    def noisy(recipe, checkpoint, label):
        print("NOISE from transformers", flush=True)
        os.write(2, b"NOISE on fd 2\n")
        result = SimpleNamespace(markdown=lambda: "| table |\n")
        return result, SimpleNamespace(markdown="m.md", json="m.json", tensorboard="tb")

    monkeypatch.setattr(eval_checkpoint, "evaluate_checkpoint", noisy)
    code = cli.main(["eval", str(tmp_path), "--recipe", BASE, f"run_dir={tmp_path}",
                     *(["--verbose"] if verbose else [])])
    seen = capfd.readouterr()
    assert code == 0 and "| table |" in seen.out
    assert ("NOISE" in seen.out + seen.err) is verbose
    log = tmp_path / "logs" / "eval.log"
    assert (log.is_file() and "NOISE on fd 2" in log.read_text()) is not verbose
