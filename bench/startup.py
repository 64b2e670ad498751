"""Time to first frame: stylelora-tui against a bare Textual app.

Each sample is a whole fresh process (interpreter start, imports, app build,
first frame), timed from spawn until the app's ``Ready`` event (sent once the
first frame is painted) makes it exit. The two apps alternate, in the same
process tree, so machine noise hits both alike. Prints medians and the ratio
(target: at most 1.5x).

    python bench/startup.py [--runs 9] [--workspace DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import sys
kind, workspace = sys.argv[1], sys.argv[2]
if kind == "bare":
    from textual.app import App
    from textual.widgets import Static

    class Bare(App):
        def compose(self):
            yield Static("hello")

        def on_ready(self):
            self.exit()

    Bare().run(headless=True, size=(80, 24))
else:
    from stylelora_tui.screens.app import make_app

    app = make_app(workspace, save_settings=False)
    app.__class__ = type("Timed", (type(app),), {"on_ready": lambda self: self.exit()})
    app.run(headless=True, size=(80, 24))
"""


def sample(kind: str, workspace: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", CHILD, kind, workspace], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--workspace", default=None, help="workspace to open (default: a fresh empty one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workspace = args.workspace or os.path.join(tmp, "ws")
        env = dict(os.environ)
        for name in ("CONFIG", "DATA", "CACHE"):
            env.setdefault(f"STYLELORA_{name}_DIR", os.path.join(tmp, name.lower()))
        sample("bare", workspace, env), sample("app", workspace, env)  # warm the disk cache
        times: dict[str, list[float]] = {"bare": [], "app": []}
        for _ in range(args.runs):
            for kind in ("bare", "app"):
                times[kind].append(sample(kind, workspace, env))
    bare, app = statistics.median(times["bare"]), statistics.median(times["app"])
    print(f"runs per app: {args.runs} (alternating, whole processes, headless 80x24)")
    print(f"bare Textual app: median {bare * 1000:.0f} ms  (min {min(times['bare']) * 1000:.0f})")
    print(f"stylelora-tui:    median {app * 1000:.0f} ms  (min {min(times['app']) * 1000:.0f})")
    print(f"ratio: {app / bare:.2f}x (target <= 1.5x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
