"""Time to first frame: stylelora-tui against a bare Textual app.

Each sample is a whole fresh process (interpreter start, imports, app build,
first frame). Our app starts the way ``stylelora-tui WORKSPACE`` does (the
CLI's parser, then ``app_cli.build_app``). Three figures are taken: from spawn
to the app's ``Ready`` event (sent once the first frame is painted: the time to
first frame proper, stamped by the child with the same wall clock), the CPU
time the process used up to that event (steadier than wall time on a shared
machine), and from spawn to the process's exit (adds shutdown). The two apps
alternate, in the same process tree, so machine noise hits both alike. Prints
medians and the ratios (target for the time to first frame: at most 1.3x),
and the ratio of the fastest runs. With ``--instructions`` (needs valgrind),
also the instructions each app executes up to its first frame: a figure that
does not move with the machine's load.

    python bench/startup.py [--runs 9] [--workspace DIR] [--instructions]
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
import os, sys, time
kind, workspace, hard_exit = sys.argv[1], sys.argv[2], len(sys.argv) > 3

def on_ready(self):
    print("READY", time.time(), time.process_time(), flush=True)
    if hard_exit:  # counting instructions to the first frame: no shutdown
        os._exit(0)
    self.exit()

if kind == "bare":
    from textual.app import App
    from textual.widgets import Static

    class Bare(App):
        def compose(self):
            yield Static("hello")

    Bare.on_ready = on_ready
    Bare().run(headless=True, size=(80, 24))
else:
    # The real start-up path of `stylelora-tui WORKSPACE`: the CLI's parser, then app_cli.
    from stylelora_tui.cli import app as app_cli
    from stylelora_tui.cli.main import build_parser

    app = app_cli.build_app(build_parser("open").parse_args(["open", workspace]))
    app.__class__ = type("Timed", (type(app),), {"on_ready": on_ready})
    app.run(headless=True, size=(80, 24))
"""


def sample(kind: str, workspace: str, env: dict[str, str]) -> tuple[float, float, float]:
    """(seconds to the first frame, seconds to exit, CPU seconds to the first frame) of one fresh process."""
    start = time.time()
    result = subprocess.run([sys.executable, "-c", CHILD, kind, workspace], check=True, env=env,
                            capture_output=True, text=True)
    end = time.time()
    ready, cpu = next(map(float, line.split()[1:3]) for line in result.stdout.splitlines() if line.startswith("READY "))
    return ready - start, end - start, cpu


def instructions(kind: str, workspace: str, env: dict[str, str]) -> int:
    """Instructions executed from interpreter start to the first frame, counted by valgrind.

    Deterministic to about 0.1 %, so unlike times it does not move with the
    machine's load; each count takes some 20 s (valgrind runs the child ~50x slower).
    """
    result = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-c", CHILD, kind, workspace, "hard"],
        check=True, env=env, capture_output=True, text=True,
    )
    return int(next(line for line in result.stderr.splitlines() if "Collected :" in line).split(":")[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--workspace", default=None, help="workspace to open (default: a fresh empty one)")
    parser.add_argument("--instructions", action="store_true",
                        help="also count instructions to the first frame under valgrind (steady on a busy machine)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workspace = args.workspace or os.path.join(tmp, "ws")
        env = dict(os.environ)
        for name in ("CONFIG", "DATA", "CACHE"):
            env.setdefault(f"STYLELORA_{name}_DIR", os.path.join(tmp, name.lower()))
        sample("bare", workspace, env), sample("app", workspace, env)  # warm the disk cache
        times: dict[str, list[tuple[float, float, float]]] = {"bare": [], "app": []}
        for _ in range(args.runs):
            for kind in ("bare", "app"):
                times[kind].append(sample(kind, workspace, env))
        counts = {kind: instructions(kind, workspace, env) for kind in ("bare", "app")} if args.instructions else None
    print(f"runs per app: {args.runs} (alternating, whole processes, headless 80x24)")
    for index, label in ((0, "time to first frame"), (2, "CPU time to first frame"), (1, "time to exit")):
        bare = statistics.median(t[index] for t in times["bare"])
        app = statistics.median(t[index] for t in times["app"])
        fastest = min(t[index] for t in times["app"]) / min(t[index] for t in times["bare"])
        print(f"{label}: bare Textual app median {bare * 1000:.0f} ms, stylelora-tui median {app * 1000:.0f} ms, "
              f"ratio {app / bare:.2f}x (fastest runs: {fastest:.2f}x)" + ("  (target <= 1.3x)" if index in (0, 2) else ""))
    if counts:
        print(f"instructions to first frame: bare Textual app {counts['bare'] / 1e6:.0f} M, stylelora-tui "
              f"{counts['app'] / 1e6:.0f} M, ratio {counts['app'] / counts['bare']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
