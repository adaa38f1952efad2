"""How good was the run's ETA? Replay a finished run's phase times through `progress.Eta`.

    python tools/eta_replay.py runs/arithmetic-cpu

Prints, before each phase, the time really left, the ETA the console would have shown at that
moment and the error; the goal is ±30 % from the middle of the run on.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from coevolve.domains import build_domain
from coevolve.measure.evaluation import recipe_heldout
from coevolve.recipe.load import load_recipe
from coevolve.run.progress import clock, eta_for
from coevolve.runstate import run_phases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    args = parser.parse_args()
    recipe = load_recipe(args.run_dir / "recipe.yaml")
    state = json.loads((args.run_dir / "state.json").read_text())
    domain = build_domain(recipe.domain.name, recipe.domain.options)
    heldout, voted = recipe_heldout(recipe, domain)
    domain.close()
    phases = run_phases(recipe.iterations)
    missing = [p.key for p in phases if p.key not in state["phase_seconds"]]
    if missing:
        raise SystemExit(f"{args.run_dir}: phases not finished: {', '.join(missing)}")
    eta = eta_for(recipe, phases, len(heldout), len(voted))
    startup, seconds = state["part_seconds"]["startup"], state["phase_seconds"]
    total = startup + sum(seconds[p.key] for p in phases)
    print(f"{args.run_dir}: {clock(total)} in all; ETA before start-up {clock(eta.remaining())}")
    eta.finish_startup(startup)
    spent = startup
    for phase in phases:
        left, shown = total - spent, eta.remaining()
        print(f"before {phase.key:14} at {clock(spent):>7}: left {clock(left):>7}, ETA {clock(shown):>7} "
              f"({100 * (shown - left) / left:+.0f} %){'  <- middle' if spent <= total / 2 < spent + seconds[phase.key] else ''}")
        eta.finish(phase, seconds[phase.key])
        spent += seconds[phase.key]
    return 0


if __name__ == "__main__":
    sys.exit(main())
