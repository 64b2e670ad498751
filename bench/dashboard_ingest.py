"""Dashboard ingest benchmark: a synthetic trainer floods a run's event log.

A writer process appends ``--rate`` log events a second (in 10 ms batches,
each line flushed) for ``--seconds`` to a run's ``events.jsonl`` while the
app (headless, 80x24, Train section) shows that run. We report:

- lag: from the last event written to the moment the Train section shows its
  step (and, during the run, each screen update's lag behind its newest event)
- the app process's CPU (psutil ``cpu_times``, user + system, all threads)
  over the writing window, in cores
- its RSS before and after, and the curve points it holds (bounded by thinning)

Usage: ``python bench/dashboard_ingest.py [--rate 1000] [--seconds 10] [--json]``
Targets (issue 4): lag <= 250 ms at the end, memory bounded, CPU < 0.5 core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

WRITER = r"""
import json, sys, time
path, rate, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
batch = max(1, rate // 100)
step, started = 0, time.time()
with open(path, "a", encoding="utf-8") as out:
    out.write(json.dumps({"v": 1, "type": "start", "time": time.time(), "step": 0, "total_steps": int(rate * seconds),
                          "backend": "synthetic", "device": "none", "model": "bench"}) + "\n")
    out.flush()
    tick = started
    while time.time() - started < seconds:
        lines = []
        for _ in range(batch):
            step += 1
            lines.append(json.dumps({"v": 1, "type": "log", "time": round(time.time(), 4), "step": step,
                "total_steps": int(rate * seconds), "epoch": step / 1000, "loss": 3.0 / (1 + step / 500),
                "learning_rate": 2e-4, "grad_norm": 0.5, "tokens_seen": step * 512, "tokens_per_s": 5000.0,
                "step_seconds": 0.001, "memory_kind": "rss", "memory_bytes": 1 << 30, "peak_memory_bytes": 1 << 30}))
        out.write("\n".join(lines) + "\n")
        out.flush()
        last_time = time.time()
        tick += 0.01
        time.sleep(max(0.0, tick - time.time()))
print(json.dumps({"last_step": step, "last_time": last_time, "events": step}))
"""


def make_run(root: Path):
    from stylelora_tui import config as config_mod
    from stylelora_tui.runs.workspace import Workspace
    from stylelora_tui.runs.control import create_run

    workspace = Workspace(root).ensure()
    (root / "corpus").mkdir(exist_ok=True)
    return workspace, create_run(workspace, config_mod.defaults(), name="bench-run")


async def measure(rate: int, seconds: float) -> dict:
    from stylelora_tui.runs.run import process_start_time
    from stylelora_tui.screens.app import make_app
    from stylelora_tui.screens.train import TrainScreen

    me = psutil.Process()
    with tempfile.TemporaryDirectory() as tmp:
        workspace, run = make_run(Path(tmp))
        app = make_app(workspace, start="train", save_settings=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause(1.0)
            screen = app.screen
            assert isinstance(screen, TrainScreen)
            rss_before = me.memory_info().rss
            cpu_before, wall_before = sum(me.cpu_times()[:2]), time.monotonic()
            writer = subprocess.Popen([sys.executable, "-c", WRITER, str(run.events_path), str(rate), str(seconds)],
                                      stdout=subprocess.PIPE, text=True)
            run.update_status(state="running", pid=writer.pid, pid_create_time=process_start_time(writer.pid),
                              started_at=time.time())
            rss_peak = rss_before
            while writer.poll() is None:
                await asyncio.sleep(0.05)
                rss_peak = max(rss_peak, me.memory_info().rss)
            result = json.loads(writer.stdout.read())
            deadline = time.time() + 10
            while screen.shown_step < result["last_step"] and time.time() < deadline:
                await asyncio.sleep(0.005)
            shown_at = time.time()
            cpu_after, wall_after = sum(me.cpu_times()[:2]), time.monotonic()
            rss_after = me.memory_info().rss
            view = screen.view
            lags = sorted(screen.lags[1:]) or [0.0]
            return {
                "rate_per_s": rate,
                "seconds": seconds,
                "events_written": result["events"],
                "last_step_shown": screen.shown_step,
                "final_lag_ms": round((shown_at - result["last_time"]) * 1000, 1),
                "update_lag_ms_median": round(statistics.median(lags) * 1000, 1),
                "update_lag_ms_p95": round(lags[int(0.95 * (len(lags) - 1))] * 1000, 1),
                "update_lag_ms_max": round(lags[-1] * 1000, 1),
                "screen_updates": len(screen.lags),
                "updates_per_s": round(len(screen.lags) / (wall_after - wall_before), 1),
                "cpu_cores": round((cpu_after - cpu_before) / (wall_after - wall_before), 3),
                "rss_before_mb": round(rss_before / 2**20, 1),
                "rss_peak_mb": round(rss_peak / 2**20, 1),
                "rss_after_mb": round(rss_after / 2**20, 1),
                "curve_points_held": len(view.train_steps) if view else 0,
            }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=int, default=1000, help="log events per second (default 1000)")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long the writer writes (default 10)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    os.environ.setdefault("STYLELORA_CONFIG_DIR", tempfile.mkdtemp(prefix="stylelora-bench-config-"))
    figures = asyncio.run(measure(args.rate, args.seconds))
    figures["cpus"] = psutil.cpu_count()
    figures["load_average_1m"] = round(os.getloadavg()[0], 2)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for key, value in figures.items():
            print(f"{key:>24}: {value}")
    ok = figures["final_lag_ms"] <= 250 and figures["cpu_cores"] < 0.5
    print(f"targets (lag <= 250 ms, CPU < 0.5 core): {'met' if ok else 'NOT met'}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
