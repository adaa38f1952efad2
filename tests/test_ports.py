"""What coevolve serves on the network: TensorBoard on this machine only unless asked, and a
single-node Ray cluster whose node address is 127.0.0.1 and whose services ask for a token
that only the run holds. Read from the sockets and a real connection, not the configuration."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "args, env, host",
    [
        ([], {}, "127.0.0.1"),  # the default: this machine only
        (["HOST=0.0.0.0"], {}, "0.0.0.0"),  # the user asks for every interface
        ([], {"HOST": "0.0.0.0"}, "127.0.0.1"),  # a shell's HOST variable does not open it
    ],
)
def test_make_tensorboard_binds_localhost_unless_asked(args, env, host):
    done = subprocess.run(["make", "-n", "tensorboard", *args], cwd=REPO, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", **env}, check=True)
    line = done.stdout.strip().splitlines()[-1]
    assert f"--host {host}" in line and "--bind_all" not in line


PROBE = r"""
import json, os, subprocess, sys, psutil
from coevolve.recipe.load import load_recipe
from coevolve.backend.ray_session import start_ray, stop_ray, LOCAL_NODE_ADDRESS
import ray
recipe = load_recipe(sys.argv[1], [f"run_dir={sys.argv[2]}"])
start_ray(recipe)
me = psutil.Process()
ours = {p.pid for p in me.children(recursive=True)} | {me.pid}
listening = sorted({c.laddr.ip for c in psutil.net_connections(kind="inet")
                    if c.status == psutil.CONN_LISTEN and c.pid in ours})
gcs = ray.get_runtime_context().gcs_address
def join(env):
    return subprocess.run([sys.executable, "-c", f"import ray; ray.init(address={gcs!r})"],
                          env=env, capture_output=True, text=True, timeout=120).returncode
stranger = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_TOKEN", "RAY_AUTH_MODE")}
print(json.dumps({"node": ray.nodes()[0]["NodeManagerAddress"], "gcs": gcs, "listening": listening,
                  "stranger_rc": join(stranger), "holder_rc": join(dict(os.environ))}))
stop_ray()
"""


@pytest.mark.slow
def test_single_node_ray_is_local_and_refuses_a_stranger(tmp_path):
    done = subprocess.run([sys.executable, "-c", PROBE, str(REPO / "recipes/arithmetic-cpu.yaml"),
                           str(tmp_path / "run")], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["node"] == "127.0.0.1" and seen["gcs"].startswith("127.0.0.1:")
    assert seen["listening"], "no listening socket was found: the check would prove nothing"
    assert set(seen["listening"]) <= {"127.0.0.1", "::ffff:127.0.0.1", "::1"}, seen
    # a process on this machine without the run's token is refused; with it, it joins
    assert seen["stranger_rc"] != 0 and seen["holder_rc"] == 0, seen
