"""The package metadata: the GPU side is an extra, so the CPU install never pulls vLLM."""

import re
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def _project() -> dict:
    return tomllib.loads(PYPROJECT.read_text())["project"]


def _name(requirement: str) -> str:
    """The distribution name of a requirement string, lower-cased ("verl[vllm]==1" -> "verl")."""
    return re.match(r"[A-Za-z0-9._-]+", requirement).group(0).lower()


def test_gpu_extra_pulls_verls_vllm_support_at_the_pinned_verl():
    gpu = _project()["optional-dependencies"]["gpu"]
    assert "verl[vllm]==0.9.1" in gpu  # verl's own extra: vllm with the torch build it needs
    base_verl = [r for r in _project()["dependencies"] if _name(r) == "verl"]
    assert base_verl and all(r.endswith("==0.9.1") for r in base_verl)  # the same verl


def test_base_dependencies_leave_vllm_out():
    for requirement in _project()["dependencies"]:
        assert _name(requirement) != "vllm", requirement
        assert not re.search(r"\[[^\]]*\bvllm\b", requirement), requirement  # not via an extra


def test_setup_never_installs_the_gpu_extra():
    makefile = (PYPROJECT.parent / "Makefile").read_text()
    assert "[gpu]" not in makefile and ",gpu" not in makefile and "gpu," not in makefile
