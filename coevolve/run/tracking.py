"""One TensorBoard run per co-evolution run, on one continuous step axis.

Every phase (both trainers, dataset building, evaluation) logs through a single `Tracker`
at the run's global step, so the curves of the challenger and the solver line up across
iterations. A resumed run opens the writer with `purge_step` at the last saved step: the
events a killed phase wrote after that step are hidden, so no phase appears twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


class Tracker:
    """Scalars, histograms and text to `<run_dir>/tensorboard` (torch's SummaryWriter)."""

    def __init__(self, run_dir: Path, purge_step: int | None = None, name: str = "") -> None:
        """`name`: a TensorBoard run of its own under `<run_dir>/tensorboard/` (e.g. one
        evaluated checkpoint); empty for the co-evolution run itself."""
        from torch.utils.tensorboard import SummaryWriter  # torch is only needed to log

        self.log_dir = Path(run_dir) / "tensorboard" / name
        self._writer = SummaryWriter(log_dir=str(self.log_dir), purge_step=purge_step)

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        for tag, value in values.items():
            if value is None:
                continue
            self._writer.add_scalar(tag, float(value), global_step=step)

    def histogram(self, tag: str, values: Sequence[float], step: int, bins: int = 10) -> None:
        if len(values):
            self._writer.add_histogram(tag, np.asarray(values, dtype=np.float64), step, bins=bins)

    def text(self, tag: str, rows: Sequence[tuple[str, ...]], header: tuple[str, ...], step: int) -> None:
        """A markdown table (TensorBoard's text plugin renders it)."""
        if not rows:
            return
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
        self._writer.add_text(tag, "\n".join(lines), global_step=step)

    def dashboard(self, layout: Mapping[str, Mapping[str, Sequence[str]]]) -> None:
        """TensorBoard's custom-scalars page: {section: {chart: [tag regexes]}}, one chart a
        multi-line plot."""
        self._writer.add_custom_scalars({section: {chart: ["Multiline", list(tags)] for chart, tags in charts.items()}
                                         for section, charts in layout.items()})

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")[:300]
