"""``train``, ``attach``, ``stop`` and ``runs``: the headless run commands.

``train`` starts the trainer as its own process and follows its event log
with a progress line. Ctrl-C stops following, never training.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from stylelora_tui import config as config_mod
from stylelora_tui.runs.run import ACTIVE_STATES, Run, RunError
from stylelora_tui.runs.workspace import Workspace
from stylelora_tui.runs.control import create_run, launch, stop


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
    elif name in ("attach", "stop"):
        parser.add_argument("run", help="run name, unique name prefix, or run directory")
        if name == "stop":
            parser.add_argument("--wait", action="store_true", help="wait until the trainer has stopped")
    elif name == "runs":
        parser.add_argument("--json", action="store_true", help="machine-readable output")


def workspace_from(args: argparse.Namespace) -> Workspace:
    root = args.workspace or Path(os.environ.get("STYLELORA_WORKSPACE", "."))
    return Workspace(Path(root).expanduser().resolve())


def run(args: argparse.Namespace) -> int:
    try:
        return {"train": cmd_train, "attach": cmd_attach, "stop": cmd_stop, "runs": cmd_runs}[args.command](args)
    except (RunError, config_mod.ConfigError) as exc:
        print(f"stylelora-tui {args.command}: {exc}", file=sys.stderr)
        return 2


def cmd_train(args: argparse.Namespace) -> int:
    workspace = workspace_from(args)
    if args.resume:
        if args.config:
            raise RunError("give either a CONFIG for a new run or --resume RUN, not both")
        the_run = workspace.find_run(args.resume)
        launch(the_run, resume=True)
        verb = "resumed"
    else:
        if not args.config:
            raise RunError("give a run CONFIG (YAML), or --resume RUN")
        cfg = config_mod.load(args.config, workspace=workspace.root)
        the_run = create_run(workspace, cfg, config_path=args.config, name=args.name)
        launch(the_run)
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


# --------------------------------------------------------------------------- following


def _bar(fraction: float, width: int = 24) -> str:
    filled = int(round(max(0.0, min(1.0, fraction)) * width))
    return "#" * filled + "-" * (width - filled)


def describe_event(event: dict[str, Any]) -> str | None:
    """A line for the events worth a line of their own (not log steps)."""
    kind = event.get("type")
    if kind == "start":
        ratio = event.get("trainable_ratio") or 0
        return (
            f"training {event.get('model')} with {event.get('backend')} on {event.get('device')} ({event.get('dtype')}): "
            f"{event.get('trainable_params', 0):,} of {event.get('total_params', 0):,} parameters trainable "
            f"({ratio:.2%}), {event.get('train_records')} records, {event.get('total_steps')} steps"
        )
    if kind == "resume":
        return f"resuming from step {event.get('from_step')} ({event.get('checkpoint')})"
    if kind == "eval":
        return f"step {event.get('step')}: eval loss {event.get('eval_loss'):.4f}"
    if kind == "checkpoint":
        return f"step {event.get('step')}: checkpoint saved"
    if kind == "warning":
        return f"warning: {event.get('message')}"
    if kind == "adapter":
        return f"adapter saved: {event.get('path')}"
    if kind == "end":
        if event.get("error"):
            return f"{event.get('state')}: {event.get('error')}"
        return f"{event.get('state')}"
    return None


def progress_line(event: dict[str, Any]) -> str:
    step, total = event.get("step", 0), event.get("total_steps") or 0
    parts = [f"step {step}/{total}" if total else f"step {step}"]
    if total:
        parts.insert(0, f"[{_bar(step / total)}]")
    if event.get("loss") is not None:
        parts.append(f"loss {event['loss']:.4f}")
    if event.get("tokens_per_s"):
        parts.append(f"{event['tokens_per_s']:.0f} tok/s")
    if event.get("learning_rate") is not None:
        parts.append(f"lr {event['learning_rate']:.2e}")
    return "  ".join(parts)


def follow(the_run: Run, *, out: TextIO | None = None, poll_seconds: float = 0.5) -> int:
    """Print the run's events until it ends; exit 0 only if it completed."""
    out = out or sys.stderr
    interactive = out.isatty()
    tail = the_run.tail()
    last_progress = ""
    try:
        while True:
            for event in tail.read():
                line = describe_event(event)
                if event.get("type") == "log":
                    last_progress = progress_line(event)
                    if interactive:
                        out.write("\r\x1b[2K" + last_progress)
                    else:
                        out.write(last_progress + "\n")
                elif line:
                    out.write(("\r\x1b[2K" if interactive else "") + line + "\n")
                out.flush()
            if not the_run.is_active():
                # Read what the trainer wrote just before it ended.
                for event in tail.read():
                    line = describe_event(event)
                    if line and event.get("type") != "log":
                        out.write(line + "\n")
                break
            time.sleep(poll_seconds)
    except KeyboardInterrupt:
        out.write(
            f"\nstopped following; training goes on. Re-attach with: stylelora-tui attach {the_run.name}"
            f"  (stop it with: stylelora-tui stop {the_run.name})\n"
        )
        return 130
    status = the_run.status()
    state = status.get("state")
    if state == "failed":
        log_tail = _log_tail(the_run.log_path)
        if log_tail:
            out.write("end of trainer.log:\n" + log_tail + "\n")
    if state == "completed":
        out.write(f"adapter: {the_run.adapter_dir}\n")
    elif state == "stopped":
        out.write(f"stopped; continue with: stylelora-tui train --resume {the_run.name}\n")
    return 0 if state == "completed" else 1


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


__all__ = ["add_arguments", "run", "follow", "ACTIVE_STATES"]
