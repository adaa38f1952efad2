"""The dashboard: its layout is written into the run's TensorBoard files and its charts match
the tags the loop logs."""

from __future__ import annotations

from coevolve.run.dashboard import LAYOUT, unmatched_charts
from coevolve.run.tracking import Tracker

CONFIG_TAG = "custom_scalars__config__"


def read_layout(log_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.custom_scalar import layout_pb2

    acc = EventAccumulator(str(log_dir), size_guidance={"tensors": 0})
    acc.Reload()
    assert CONFIG_TAG in acc.Tags()["tensors"], acc.Tags()
    return layout_pb2.Layout.FromString(acc.Tensors(CONFIG_TAG)[0].tensor_proto.string_val[0])


def test_the_layout_is_written_into_the_run(tmp_path):
    tracker = Tracker(tmp_path)
    tracker.dashboard(LAYOUT)
    tracker.close()
    layout = read_layout(tmp_path / "tensorboard")
    assert [c.title for c in layout.category] == list(LAYOUT)
    first = layout.category[0].chart[0]
    assert first.title == "held-out greedy accuracy (all, and per category)"
    assert list(first.multiline.tag) == [r"^eval/accuracy(/.*)?$"]


def test_unmatched_charts_names_the_empty_ones():
    tags = ["eval/accuracy", "eval/accuracy/mul_small", "curriculum/prob/mul_small"]
    empty = unmatched_charts(LAYOUT, tags)
    assert "1. solver: held-out accuracy and label quality / held-out greedy accuracy (all, and per category)" not in empty
    assert "4. curriculum / probability of each category" not in empty
    assert "4. curriculum / value of each category (mean |advantage|)" in empty
    # verl's metrics are not on the page
    assert unmatched_charts({"x": {"y": [r"^challenger/"]}}, ["verl/challenger/actor/pg_loss"]) == ["x / y"]


def test_the_dashboard_renders_in_headless_chromium(tmp_path):
    """tools/dashboard_screenshot.py on a small run: TensorBoard serves coevolve's layout and
    Chromium draws it. CI installs Chromium (.ci/run) and sets COEVOLVE_REQUIRE_CHROMIUM=1, so
    there a missing browser fails instead of skipping."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import pytest

    if not shutil.which("chromium"):
        if os.environ.get("COEVOLVE_REQUIRE_CHROMIUM"):
            pytest.fail("COEVOLVE_REQUIRE_CHROMIUM is set but there is no chromium on PATH")
        pytest.skip("no chromium on PATH (apt-get install chromium)")
    tracker = Tracker(tmp_path)
    tracker.dashboard(LAYOUT)
    for step in range(1, 6):
        tracker.scalars({"eval/accuracy": 0.4 + step / 50, "challenger/reward_mean": 0.5,
                         "curriculum/prob/mul_small": 0.5}, step)
    tracker.close()
    repo = Path(__file__).resolve().parents[1]
    out = tmp_path / "dashboard.png"
    result = subprocess.run([sys.executable, str(repo / "tools" / "dashboard_screenshot.py"), str(tmp_path),
                             "--out", str(out), "--height", "900"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 sections, 14 charts" in result.stdout and out.stat().st_size > 20_000
    assert "4. curriculum / value of each category" in result.stdout  # named as having no data
