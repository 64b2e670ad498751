"""``train``, ``attach``, ``stop`` and ``runs``: the headless run commands.

``train`` starts the trainer as its own process and follows its event log
with a progress line. Ctrl-C stops following, never training.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from stylelora_tui import config as config_mod
from stylelora_tui.cli.follow import follow
from stylelora_tui.runs.run import ACTIVE_STATES, RunError
from stylelora_tui.runs.workspace import Workspace
from stylelora_tui.runs.control import resume_run, start_run, stop


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument(
        "-w", "--workspace", type=Path, default=None,
        help="workspace folder holding runs/ (default: $STYLELORA_WORKSPACE or the current folder)",
    )
    if name == "train":
        parser.add_argument("config", nargs="?", type=Path, help="run config (YAML)")
        parser.add_argument("--resume", metavar="RUN", help="continue RUN from its newest checkpoint")
        parser.add_argument("--detach", action="store_true", help="print the run directory and return at once")
        parser.add_argument("--name", help="run name (default: time stamp and config name)")
        parser.add_argument("--gpus", type=int, metavar="N", default=None,
                            help="training processes, one per GPU, through accelerate DDP (default: the config's train.gpus; "
                                 "0: every visible GPU)")
        parser.add_argument("--config-file", type=Path, metavar="FILE", default=None,
                            help="accelerate config for several machines (passed to accelerate launch as --config_file)")
    elif name in ("attach", "stop"):
        parser.add_argument("run", help="run name, unique name prefix, or run directory")
        if name == "stop":
            parser.add_argument("--wait", action="store_true", help="wait until the trainer has stopped")
    elif name == "runs":
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        parser.add_argument("--sweep", metavar="NAME", help="the sweep table of NAME: each trial's params, final train "
                            "loss, best eval loss, style distance, time and peak memory, the best marked")
        parser.add_argument("--sort", metavar="COLUMN", default=None,
                            help="with --sweep: sort by a column (number, run, params, state, final_train_loss, "
                                 "best_eval_loss, style_distance, duration_s, peak_memory_bytes); runs without a value go last")
        parser.add_argument("--descending", action="store_true", help="with --sort: highest first")


def workspace_from(args: argparse.Namespace) -> Workspace:
    return Workspace.named(args.workspace)


def run(args: argparse.Namespace) -> int:
    try:
        return {"train": cmd_train, "attach": cmd_attach, "stop": cmd_stop, "runs": cmd_runs}[args.command](args)
    except (RunError, config_mod.ConfigError) as exc:
        print(f"stylelora-tui {args.command}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full or read-only disk, a folder we may not write: no traceback
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"stylelora-tui {args.command}: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1


def cmd_train(args: argparse.Namespace) -> int:
    workspace = workspace_from(args)
    if args.resume:
        if args.config:
            raise RunError("give either a CONFIG for a new run or --resume RUN, not both")
        if args.gpus is not None or args.config_file is not None:
            raise RunError("a run resumes with the processes it started with (train.gpus in its config.yaml): "
                           "drop --gpus and --config-file")
        the_run = workspace.find_run(args.resume)
        resume_run(the_run)
        verb = "resumed"
    else:
        if not args.config:
            raise RunError("give a run CONFIG (YAML), or --resume RUN")
        cfg = config_mod.load(args.config, workspace=workspace.root)
        if args.gpus is not None:
            if args.gpus < 0:
                raise RunError(f"--gpus {args.gpus}: give 0 (every visible GPU) or a number of processes")
            cfg["train"]["gpus"] = args.gpus
        if args.config_file is not None:
            if not args.config_file.is_file():
                raise RunError(f"--config-file {args.config_file}: no such file (write one with `accelerate config`)")
            cfg["train"]["accelerate_config"] = str(args.config_file.resolve())
        the_run, _ = start_run(workspace, cfg, config_path=args.config, name=args.name)
        verb = "started"
    if args.detach:
        print(the_run.path)
        return 0
    print(f"{verb} run {the_run.name} ({the_run.path})", file=sys.stderr)
    return follow(the_run)


def cmd_attach(args: argparse.Namespace) -> int:
    return follow(workspace_from(args).find_run(args.run))


def cmd_stop(args: argparse.Namespace) -> int:
    the_run = workspace_from(args).find_run(args.run)
    if not stop(the_run):
        print(f"run {the_run.name} is not running ({the_run.state})", file=sys.stderr)
        return 1
    print(f"asked run {the_run.name} to checkpoint and stop", file=sys.stderr)
    if args.wait:
        while the_run.is_active():
            time.sleep(0.5)
        print(f"run {the_run.name}: {the_run.state}", file=sys.stderr)
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    if args.sweep:
        return cmd_sweep_table(args)
    if args.sort:
        raise RunError("--sort sorts a sweep table: give --sweep NAME too")
    summaries = [r.summary() for r in workspace_from(args).runs()]
    if args.json:
        json.dump(summaries, sys.stdout, indent=2)
        print()
        return 0
    if not summaries:
        print("no runs yet", file=sys.stderr)
        return 0
    print(f"{'RUN':<36} {'STATE':<10} {'STEP':>11} {'LAST LOSS':>9}  MODEL")
    for s in summaries:
        step = f"{s['step']}/{s['total_steps']}" if s["total_steps"] else str(s["step"])
        loss = f"{s['last_loss']:.4f}" if s["last_loss"] is not None else "-"
        print(f"{s['name']:<36} {s['state']:<10} {step:>11} {loss:>9}  {s['model'] or '-'}")
    return 0


def cmd_sweep_table(args: argparse.Namespace) -> int:
    from stylelora_tui.sweeps.sweep import find_sweep
    from stylelora_tui.sweeps.table import SORT_KEYS, sort_rows, sweep_table, text_table

    sort = args.sort
    if sort and sort not in SORT_KEYS:
        raise RunError(f"--sort {args.sort}: no such column; one of {', '.join(SORT_KEYS)}")
    rows = sweep_table(find_sweep(workspace_from(args), args.sweep))
    if sort:
        rows = sort_rows(rows, sort, descending=args.descending)
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
        return 0
    if not rows:
        print(f"sweep {args.sweep}: no trials started yet", file=sys.stderr)
        return 0
    print(text_table(rows))
    return 0


__all__ = ["add_arguments", "run", "follow", "ACTIVE_STATES"]
