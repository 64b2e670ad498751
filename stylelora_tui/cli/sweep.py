"""``sweep``: run a config's grid of values as a queue of runs, and see, stop or resume it.

``sweep CONFIG`` starts the sweep's runner (its own process, like a trainer)
and follows it; Ctrl-C stops following, never the sweep.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from stylelora_tui import config as config_mod
from stylelora_tui.runs.run import RunError
from stylelora_tui.runs.workspace import Workspace

ACTIONS = ("status", "stop", "resume")


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.usage = ("stylelora-tui sweep CONFIG [--name NAME] [--parallel N] [--detach] | sweep status [NAME] [--json] | "
                    "sweep stop NAME | sweep resume NAME [--parallel N] [--detach]")
    parser.add_argument("target", help="a run config with a sweep: mapping, or status, stop or resume")
    parser.add_argument("sweep", nargs="?", help="the sweep's name (status, stop, resume)")
    parser.add_argument("-w", "--workspace", type=Path, default=None,
                        help="workspace folder holding runs/ and sweeps/ (default: $STYLELORA_WORKSPACE or the current folder)")
    parser.add_argument("--name", help="sweep name (default: the config's name); its runs are NAME-01-..., NAME-02-...")
    parser.add_argument("--detach", action="store_true", help="print the sweep folder and return at once")
    parser.add_argument("--parallel", type=int, metavar="N", default=None,
                        help="train up to N trials at once, each on a GPU of its own when there are GPUs "
                             "(default 1; a resume keeps the sweep's last value)")
    parser.add_argument("--json", action="store_true", help="status: machine-readable output")


def run(args: argparse.Namespace) -> int:
    workspace = Workspace.named(args.workspace)
    action = args.target if args.target in ACTIONS and not Path(args.target).is_file() else "start"
    try:
        if action == "start":
            return cmd_start(args, workspace)
        if action != "status" and not args.sweep:
            raise RunError(f"give the sweep's name: stylelora-tui sweep {action} NAME")
        return {"status": cmd_status, "stop": cmd_stop, "resume": cmd_resume}[action](args, workspace)
    except (RunError, config_mod.ConfigError) as exc:
        print(f"stylelora-tui sweep: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"stylelora-tui sweep: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1


def cmd_start(args: argparse.Namespace, workspace: Workspace) -> int:
    from stylelora_tui.sweeps import sweep as sweeps

    if args.sweep:
        raise RunError(f"unexpected {args.sweep!r}: give the name with --name")
    config_path = Path(args.target)
    if not config_path.is_file():
        raise RunError(f"no such config file: {config_path} (or an action: {', '.join(ACTIONS)})")
    the_sweep = sweeps.create_sweep(workspace, config_path, args.name, parallel=1 if args.parallel is None else args.parallel)
    sweeps.launch(the_sweep)
    return _started(args, the_sweep, "started")


def cmd_resume(args: argparse.Namespace, workspace: Workspace) -> int:
    from stylelora_tui.sweeps import sweep as sweeps

    the_sweep = sweeps.find_sweep(workspace, args.sweep)
    sweeps.launch(the_sweep, parallel=args.parallel)
    return _started(args, the_sweep, "resumed")


def _started(args: argparse.Namespace, the_sweep: Any, verb: str) -> int:
    if args.detach:
        print(the_sweep.path)
        return 0
    print(f"{verb} sweep {the_sweep.name} ({the_sweep.path}); Ctrl-C stops following, not the sweep", file=sys.stderr)
    return follow(the_sweep)


def follow(the_sweep: Any, interval: float = 2.0) -> int:
    """Print the runner's log lines until it ends."""
    offset = 0
    while True:
        alive = the_sweep.runner_alive()
        if the_sweep.log_path.exists():
            with open(the_sweep.log_path, "rb") as log:
                log.seek(offset)
                chunk = log.read()
            offset += len(chunk)
            sys.stdout.write(chunk.decode("utf-8", "replace"))
            sys.stdout.flush()
        if not alive:
            break
        time.sleep(interval)
    state = the_sweep.state()
    print(f"sweep {the_sweep.name}: {state}", file=sys.stderr)
    _print_table(the_sweep)
    return 0 if state in ("completed", "stopped") else 1


def cmd_status(args: argparse.Namespace, workspace: Workspace) -> int:
    from stylelora_tui.sweeps import sweep as sweeps
    from stylelora_tui.sweeps.table import sweep_table, text_table

    the_sweep = sweeps.find_sweep(workspace, args.sweep)
    status = the_sweep.read_status()
    report = {"name": the_sweep.name, "path": str(the_sweep.path), "state": the_sweep.state(),
              "runs": status.get("runs"), "current_run": status.get("current_run"),
              "current_runs": status.get("current_runs") or [], "parallel": status.get("parallel") or 1,
              "error": status.get("error"),
              "trials": the_sweep.trials(), "table": sweep_table(the_sweep)}
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
        return 0
    print(f"sweep {report['name']}: {report['state']}, {len(report['trials'])} of {report['runs']} trials started, "
          f"{report['parallel']} at a time"
          + (f"; error: {report['error']}" if report["error"] else ""))
    if report["table"]:
        print(text_table(report["table"]))
    return 0


def _print_table(the_sweep: Any) -> None:
    from stylelora_tui.sweeps.table import sweep_table, text_table

    rows = sweep_table(the_sweep)
    if rows:
        print(text_table(rows))


def cmd_stop(args: argparse.Namespace, workspace: Workspace) -> int:
    from stylelora_tui.sweeps import sweep as sweeps

    the_sweep = sweeps.find_sweep(workspace, args.sweep)
    if not sweeps.stop(the_sweep):
        print(f"sweep {the_sweep.name} is not running ({the_sweep.state()})", file=sys.stderr)
        return 1
    print(f"asked sweep {the_sweep.name} to stop its runs in training (each checkpoints) and end; "
          f"`stylelora-tui sweep resume {the_sweep.name}` continues it", file=sys.stderr)
    return 0
