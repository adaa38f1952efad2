"""What a kept dataset can teach: measure/datasets.py and tools/dataset_counts.py on hand-made datasets."""

import pytest

from coevolve.domains import build_domain
from coevolve.measure.datasets import DatasetSummary, summarise
from coevolve.records import Question
from coevolve.runstate import save_dataset
from helpers.tools import load_tool as load

ARITH = build_domain("arithmetic")


def question(text: str, label: str) -> Question:
    return Question(text, "div_small", text, label, "majority_vote")


KEPT = [question("What is 42 / 7?", "6"),  # split votes, work to do: informative
        question("What is 39 / 39?", "1"),  # split votes, but trivial
        question("What is 56 / 8?", "8"),  # unanimous and wrong
        question("What is 9 / 1?", "9")]  # unanimous and trivial
AGREEMENTS = [4 / 6, 5 / 6, 1.0, 1.0]


def test_a_dataset_is_counted_by_what_it_can_teach():
    assert summarise(ARITH, KEPT, AGREEMENTS) == DatasetSummary(
        kept=4, split_votes=2, trivial=2, informative=1, distinct_texts=4, label_accuracy=0.75)


def test_questions_and_agreements_must_pair_up():
    with pytest.raises(ValueError, match="4 questions but 3 agreements"):
        summarise(ARITH, KEPT, AGREEMENTS[:3])


def test_the_tool_prints_a_row_per_iteration(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    (run / "data").mkdir(parents=True)
    (run / "recipe.yaml").write_text("domain:\n  name: arithmetic\n  categories: [div_small]\n")
    save_dataset(KEPT, AGREEMENTS, run / "data" / "iter_001" / "solver_dataset.jsonl")
    save_dataset(KEPT[:1], AGREEMENTS[:1], run / "data" / "iter_002" / "solver_dataset.jsonl")
    monkeypatch.setattr("sys.argv", ["dataset_counts.py", str(run)])
    assert load("dataset_counts").main() == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2:] == ["| run | 1 | 4 | 2 | 2 | 1 | 4 | 0.75 |", "| run | 2 | 1 | 1 | 0 | 1 | 1 | 1.00 |"]


def test_the_tool_names_a_folder_that_is_no_run(tmp_path, monkeypatch):
    monkeypatch.setattr("sys.argv", ["dataset_counts.py", str(tmp_path)])
    with pytest.raises(SystemExit, match="no recipe.yaml"):
        load("dataset_counts").main()


def test_no_tool_shadows_an_installed_package():
    # tests put tools/ first on sys.path (helpers/tools.py): a tool named like a top-level module of
    # an installed package (datasets, ray, torch) would be imported in that package's place
    from importlib.metadata import packages_distributions

    from helpers.tools import TOOLS

    tools = {path.stem for path in TOOLS.glob("*.py")}
    assert tools & set(packages_distributions()) == set()
    assert "datasets" in packages_distributions()  # the name the earlier tools/datasets.py shadowed
