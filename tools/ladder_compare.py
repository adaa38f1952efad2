"""Two sets of archived ladder runs against each other, paired by seed: one design of an arm
against another (archived under different folders), on the same test questions.

    python tools/ladder_compare.py docs/results/ladder/arithmetic-cpu/co-evolution-seed{0,1}.json \\
        --vs docs/results/ladder/arithmetic-cpu/trivial-prompt-scope/co-evolution-seed{0,1}.json

Prints the pooled paired difference of the final test accuracies (points) with its paired
bootstrap 95 % interval (coevolve/measure/ladder.py, as in `make baselines`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from coevolve.measure.ladder import compare_archived, read_archived_run
from coevolve.runstate import RunDirError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="archived runs (tools/baselines.py --archive)")
    parser.add_argument("--vs", nargs="+", type=Path, required=True, help="the archived runs to compare with")
    args = parser.parse_args()
    missing = [str(p) for p in [*args.runs, *args.vs] if not p.is_file()]
    if missing:
        raise SystemExit(f"ladder_compare: no such archived run: {', '.join(missing)}")
    try:
        gain = compare_archived([read_archived_run(p) for p in args.runs], [read_archived_run(p) for p in args.vs])
    except (RunDirError, ValueError) as err:
        raise SystemExit(f"ladder_compare: {err}") from None
    print(f"{gain.arm} ({', '.join(str(p) for p in args.runs)})\n  vs {gain.other} ({', '.join(str(p) for p in args.vs)}):\n"
          f"  {100 * gain.difference:+.1f} points, paired 95 % interval [{100 * gain.low:+.1f}, {100 * gain.high:+.1f}], "
          f"{gain.seeds} seeds, {gain.pairs} question pairs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
