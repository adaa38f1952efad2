"""Wall time and peak memory of any command's whole process tree, e.g. one version of a run.

The run measures itself (`memory/peak_pss_gb/<phase>`, logs/memory.json); this measures a
command from outside with the same sampler (`coevolve.measure.memory`, every 5 s), so that an
older checkout, which has no sampler of its own, can be held against today's:

    python tools/measure_command.py --json runs/bench/before.json -- make train-recipe
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from coevolve.measure.memory import GIB, MemorySampler, top_processes


def measure(command: list[str], interval: float) -> dict:
    """Run `command` to its end; its exit status, seconds and peaks (GiB)."""
    start = time.monotonic()
    process = subprocess.Popen(command)
    sampler = MemorySampler(pid=process.pid, interval=interval).start()
    returncode = process.wait()
    peaks = sampler.stop()
    return {
        "command": command,
        "returncode": returncode,
        "seconds": round(time.monotonic() - start, 1),
        "peak_tree_pss_gb": round(peaks.tree_pss / GIB, 2),
        "peak_machine_used_gb": round(peaks.machine_used / GIB, 2),
        "processes_gb": {name: round(value / GIB, 2) for name, value in top_processes(peaks, count=16)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to measure after --")
    result = measure(command, args.interval)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    sys.exit(result["returncode"])


if __name__ == "__main__":
    main()
