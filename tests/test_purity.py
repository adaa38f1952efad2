"""The co-evolution logic must import without torch, verl or ray.

Structural: every module of the package outside `coevolve/backend/` is imported, found by
walking the tree, so a new module is covered the day it is written.
"""

import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "coevolve"
HEAVY = ("torch", "verl", "ray", "transformers")
# verl reads its plugin list when first imported, so the driver must import it only after
# ray_session.start_ray has set the environment: the backend's entry point imports no verl.
BACKEND_ENTRY = "coevolve.backend.verl_backend"


def pure_modules() -> list[str]:
    """Dotted names of every module of the package outside the backend."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[1] == "backend":
            continue
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_every_module_outside_the_backend_is_walked():
    names = pure_modules()
    # one module of each part of the architecture: the walk reaches every folder
    for expected in ("coevolve.cli", "coevolve.stats", "coevolve.recipe.load", "coevolve.selfplay.rewards",
                     "coevolve.measure.report", "coevolve.run.loop", "coevolve.domains.arithmetic"):
        assert expected in names
    assert not any(name.startswith("coevolve.backend") for name in names)


def test_pure_modules_import_no_heavy_framework():
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in [*pure_modules(), BACKEND_ENTRY])
        + "from coevolve.domains import build_domain\n"
        + "build_domain('arithmetic')\n"
        + f"print([m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
