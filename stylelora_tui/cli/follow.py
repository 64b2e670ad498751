"""Print a run's progress until it ends (``train`` and ``attach``): lines over the core follower.

The reading is ``runs.follower.RunFollower`` (the same code the app uses), polled
synchronously here; this module only turns events into lines.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, TextIO

from stylelora_tui.runs.follower import RunFollower
from stylelora_tui.runs.run import Run


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
            + (f"\n  data {event['data_format']}" + (f", packed into {event.get('train_sequences')} sequences of "
               f"{event.get('max_seq_length')} tokens" if event.get("packing") else "")
               + f"; gradient checkpointing {'on' if event.get('gradient_checkpointing') else 'off'}"
               + (f" ({event['gradient_checkpointing_note']})" if event.get("gradient_checkpointing_note") else "")
               if event.get("data_format") else "")
        )
    if kind == "resume":
        return f"resuming from step {event.get('from_step')} ({event.get('checkpoint')})"
    if kind == "eval":
        loss = event.get("eval_loss")
        return f"step {event.get('step')}: eval loss {'-' if loss is None else f'{loss:.4f}'}"
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


class EventPrinter:
    """Writes events as they come: a redrawn progress line on a terminal, plain lines elsewhere."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.interactive = out.isatty()

    def __call__(self, _name: str, events: list[dict[str, Any]]) -> None:
        for event in events:
            if event.get("type") == "log":
                line = progress_line(event)
                self.out.write("\r\x1b[2K" + line if self.interactive else line + "\n")
            elif line := describe_event(event):
                self.out.write(("\r\x1b[2K" if self.interactive else "") + line + "\n")
        self.out.flush()


def follow(the_run: Run, *, out: TextIO | None = None, poll_seconds: float = 0.5) -> int:
    """Print the run's events until it ends; exit 0 only if it completed."""
    out = out or sys.stderr
    follower = RunFollower.of_run(the_run, on_events=EventPrinter(out))
    try:
        while True:
            # One poll reads the new events, then the status; an end the status
            # reveals is read in the same poll, so nothing is left unprinted.
            follower.poll_once()
            view = follower.view(the_run.name, curves=False, log=False)
            if view is None:
                out.write(f"run {the_run.name} is gone: its folder {the_run.path} was deleted\n")
                return 1
            if not view.active:
                break
            time.sleep(poll_seconds)
    except KeyboardInterrupt:
        out.write(
            f"\nstopped following; training goes on. Re-attach with: stylelora-tui attach {the_run.name}"
            f"  (stop it with: stylelora-tui stop {the_run.name})\n"
        )
        return 130
    state = view.state
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
