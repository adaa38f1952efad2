"""The memory sampler (coevolve/measure/memory.py): process trees, PSS and windows over /proc.

A fake /proc built in a temporary folder gives exact numbers; one case reads the real /proc.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from coevolve.measure import memory


def fake_proc(tmp_path: Path, processes: dict[int, tuple[int, str, int]]) -> Path:
    """/proc with `pid -> (parent pid, command line, PSS in kB)` and a meminfo."""
    for pid, (ppid, cmdline, pss_kb) in processes.items():
        folder = tmp_path / str(pid)
        folder.mkdir()
        # a command name with a space and a parenthesis, as Ray's can be
        (folder / "stat").write_text(f"{pid} (odd (name) x) S {ppid} {pid} {pid} 0\n")
        (folder / "cmdline").write_bytes(b"\0".join(w.encode() for w in cmdline.split()) + b"\0")
        (folder / "smaps_rollup").write_text(f"00400000-7fff [rollup]\nRss: {2 * pss_kb} kB\nPss: {pss_kb} kB\n")
    (tmp_path / "meminfo").write_text("MemTotal: 1000 kB\nMemFree: 100 kB\nMemAvailable: 400 kB\n")
    (tmp_path / "self").mkdir()  # non-numeric entries are skipped
    return tmp_path


TREE = {
    10: (1, "python -m coevolve.cli train", 100),
    11: (10, "ray::WorkerDict.update_actor", 1000),
    12: (11, "ray::HFRolloutServer", 300),
    20: (1, "python other_run.py", 5000),  # not in the tree of 10
}


@pytest.mark.parametrize(("root", "expected"), [
    (10, {10, 11, 12}),  # the driver: all its descendants, never a sibling
    (11, {11, 12}),  # a subtree
    (12, {12}),  # a leaf
])
def test_process_tree(tmp_path, root, expected):
    proc = fake_proc(tmp_path, TREE)
    assert set(memory.process_tree(root, proc)) == expected


@pytest.mark.parametrize(("pid", "name"), [
    (11, "ray::WorkerDict"),  # a busy Ray actor is named by its class, not the method it runs
    (12, "ray::HFRolloutServer"),
    (10, "python coevolve.cli train"),  # options dropped
])
def test_process_name(tmp_path, pid, name):
    assert memory.process_name(pid, fake_proc(tmp_path, TREE)) == name


def test_sample_tree_and_peaks(tmp_path):
    proc = fake_proc(tmp_path, TREE)
    sample = memory.sample_tree(10, proc)
    assert sum(sample.values()) == (100 + 1000 + 300) * 1024
    assert sample["ray::WorkerDict [11]"] == 1000 * 1024
    peaks = memory.Peaks()
    peaks.add(sample, used=7)
    peaks.add({"ray::WorkerDict [11]": 5}, used=3)  # a smaller later sample keeps the peaks
    assert (peaks.tree_pss, peaks.machine_used) == ((100 + 1000 + 300) * 1024, 7)
    assert memory.top_processes(peaks, 1) == [("ray::WorkerDict [11]", 1000 * 1024)]
    peaks.add({"ray::IDLE [11]": 7}, used=3)  # the same process under another name, below its peak
    peaks.add({"ray::Renamed [12]": 10**9}, used=3)  # above its peak: the row takes the new name
    assert "ray::IDLE [11]" not in peaks.per_process and "ray::HFRolloutServer [12]" not in peaks.per_process
    assert peaks.per_process["ray::Renamed [12]"] == 10**9
    # what each process held when the tree peaked: that sample's values, not each one's own peak
    assert peaks.at_tree_peak == {"ray::Renamed [12]": 10**9}
    assert memory.top_processes(peaks, 1, at_tree_peak=True) == [("ray::Renamed [12]", 10**9)]


def test_the_tree_peak_keeps_the_sample_it_was_seen_in():
    peaks = memory.Peaks()
    peaks.add({"a [1]": 10, "b [2]": 1}, used=0)
    peaks.add({"a [1]": 1, "b [2]": 20}, used=0)  # the tree's peak: 21
    peaks.add({"a [1]": 15, "b [2]": 1}, used=0)  # a's own peak, below the tree's
    assert peaks.tree_pss == 21 and peaks.at_tree_peak == {"a [1]": 1, "b [2]": 20}
    assert peaks.per_process == {"a [1]": 15, "b [2]": 20}


def test_meminfo(tmp_path):
    proc = fake_proc(tmp_path, TREE)
    assert memory.machine_used_bytes(proc / "meminfo") == 600 * 1024
    assert memory.available_bytes(proc / "meminfo") == 400 * 1024


def test_ended_process_counts_nothing(tmp_path):
    assert memory.pss_bytes(999, fake_proc(tmp_path, TREE)) == 0


def test_sampler_windows_on_this_process():
    """On the real /proc: a child holding ~200 MB shows in the window it lived in, not the next."""
    sampler = memory.MemorySampler(os.getpid(), interval=0.05).start()
    sampler.start_window()
    code = "import time; b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(0.6)"
    subprocess.run([sys.executable, "-c", code], check=True)
    with_child = sampler.start_window()
    after = sampler.start_window()
    total = sampler.stop()
    assert with_child.tree_pss - after.tree_pss > 150 * 2**20
    assert total.tree_pss >= with_child.tree_pss
    assert any("python" in name for name in with_child.per_process)
