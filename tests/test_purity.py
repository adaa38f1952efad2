"""The co-evolution logic must import without torch, verl or ray."""

import subprocess
import sys

PURE_MODULES = [
    "coevolve.records",
    "coevolve.vote",
    "coevolve.rewards",
    "coevolve.repetition",
    "coevolve.filters",
    "coevolve.curriculum",
    "coevolve.domains",
    "coevolve.domains.arithmetic",
    "coevolve.domains.math",
    "coevolve.domains.reasoning_gym",
    "coevolve.recipe",
    "coevolve.evaluation",
    "coevolve.cli",
    "coevolve.console",
    "coevolve.progress",
    "coevolve.dashboard",
    "coevolve.probe",
    "coevolve.report",
    "coevolve.label_quality",
    "coevolve.recipe_diff",
    "coevolve.plan",
    "coevolve.loop",  # the backend is imported only inside the methods that start it
    # verl reads its plugin list when first imported, so the driver must import it only after
    # ray_session.start_ray has set the environment: the backend's entry point imports no verl
    "coevolve.backend.verl_backend",
]

HEAVY = ("torch", "verl", "ray", "transformers")


def test_pure_modules_import_no_heavy_framework():
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in PURE_MODULES)
        + "from coevolve.domains import build_domain\n"
        + "build_domain('arithmetic')\n"
        + f"print([m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
