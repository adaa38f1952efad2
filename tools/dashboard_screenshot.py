"""Screenshot a run's co-evolution dashboard in a real browser (headless Chromium).

    python tools/dashboard_screenshot.py runs/arithmetic-cpu --out docs/dashboard.png

Starts TensorBoard on the run's `tensorboard/` folder, checks through TensorBoard's own HTTP
API that the custom-scalars layout is served and that every chart of it has data, then loads
the custom-scalars page in headless Chromium and writes a PNG, which must not be blank.
`--write-layout` first adds the layout to a run written by a coevolve version that did not
write it (a new event file in the run's TensorBoard folder; nothing else is touched).
Needs Chromium (`apt-get install chromium`, what `make dashboard` does).
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from coevolve.run.dashboard import LAYOUT, unmatched_charts

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def wait_for_tensorboard(base: str, server: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"tensorboard exited with {server.returncode}")
        try:
            if get_json(f"{base}/data/plugins_listing").get("custom_scalars", {}).get("enabled"):
                return
        except OSError:
            pass
        time.sleep(1.0)
    raise SystemExit(f"tensorboard at {base}: no custom-scalars dashboard after {timeout:.0f} s "
                     "(does the run's tensorboard/ folder hold the layout? try --write-layout)")


def check_served(base: str) -> list[str]:
    """The served layout is coevolve's, and the charts that have no data."""
    layout = get_json(f"{base}/data/plugin/custom_scalars/layout")
    served = [c["title"] for c in layout.get("category", [])]
    if served != list(LAYOUT):
        raise SystemExit(f"served layout {served} is not coevolve's {list(LAYOUT)}")
    runs = get_json(f"{base}/data/plugin/scalars/tags")
    tags = sorted({tag for run in runs.values() for tag in run})
    return unmatched_charts(LAYOUT, tags)


def screenshot(browser: str, url: str, out: Path, *, width: int, height: int) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--window-size={width},{height}", "--virtual-time-budget=20000",
               f"--screenshot={out.resolve()}", url]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180)
    if result.returncode != 0 or not out.is_file():
        raise SystemExit(f"{browser} failed ({result.returncode}):\n{result.stderr[-2000:]}")


def not_blank(png: Path) -> float:
    """Share of pixels that differ from the most common colour (a blank page: ~0)."""
    import matplotlib.image as mpimg
    import numpy as np

    pixels = mpimg.imread(str(png))[..., :3].reshape(-1, 3)
    colours, counts = np.unique((pixels * 255).astype(np.uint8), axis=0, return_counts=True)
    return 1.0 - counts.max() / counts.sum()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/dashboard.png"))
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=2200)
    parser.add_argument("--write-layout", action="store_true",
                        help="add the dashboard layout to a run of an earlier coevolve version")
    args = parser.parse_args()
    logdir = args.run_dir / "tensorboard"
    if not logdir.is_dir():
        raise SystemExit(f"{logdir}: no such folder; give a run directory, e.g. runs/arithmetic-cpu")
    browser = next((b for b in BROWSERS if shutil.which(b)), None)
    if browser is None:
        raise SystemExit(f"no Chromium found ({', '.join(BROWSERS)}); install it: apt-get install chromium")
    if args.write_layout:
        from coevolve.run.tracking import Tracker

        tracker = Tracker(args.run_dir)
        tracker.dashboard(LAYOUT)
        tracker.close()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir),
                               "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_tensorboard(base, server)
        empty = check_served(base)
        screenshot(browser, f"{base}/#custom_scalars", args.out, width=args.width, height=args.height)
    finally:
        server.terminate()
        server.wait(timeout=30)
    share = not_blank(args.out)
    if share < 0.02:
        raise SystemExit(f"{args.out}: the page looks blank ({share:.1%} of pixels drawn)")
    print(f"dashboard of {args.run_dir}: {len(LAYOUT)} sections, "
          f"{sum(len(c) for c in LAYOUT.values())} charts, {share:.0%} of pixels drawn -> {args.out}")
    if empty:
        print("charts with no data in this run: " + "; ".join(empty))
    return 0


if __name__ == "__main__":
    sys.exit(main())
