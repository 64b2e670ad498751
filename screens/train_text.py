"""What the Train section writes about a run: figures, the run line, failures, hints.

Plain functions of a ``RunView`` snapshot (no widgets), shared with the Runs
section (``duration``, ``number``).
"""

from __future__ import annotations

import time
from typing import Any

from stylelora_tui.runs.follower import RunView
from stylelora_tui.runs.run import Run
from stylelora_tui.training.failures import PLAIN_OOM_HINT


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def number(value: Any, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def memory(event: dict[str, Any] | None) -> str:
    from stylelora_tui.training.estimate import format_bytes

    if not event or not event.get("memory_bytes"):
        return "-"
    text = f"{format_bytes(event['memory_bytes'])} {'GPU' if event.get('memory_kind') == 'gpu' else 'RSS'}"
    if event.get("peak_memory_bytes"):
        text += f" (peak {format_bytes(event['peak_memory_bytes'])})"
    return text


def eta(view: RunView) -> str:
    """Time to the last step, or to the end of the time budget (train.max_minutes) when that comes first."""
    total, per_step = view.total_steps, view.seconds_per_step
    if not view.active or not total or not per_step:
        return ""
    left = (total - view.step) * per_step
    start = view.start or {}
    if budget := float(start.get("max_minutes") or 0) * 60:
        trained = (view.step - int(start.get("step") or 0)) * per_step  # this attempt's training time so far
        if budget - trained < left:
            return f"ETA {duration(max(0.0, budget - trained))} (time budget {budget / 60:g} min)"
    return f"ETA {duration(left)}"


def stats_text(view: RunView) -> str:
    log, start = view.last_log or {}, view.start or {}
    device = start.get("device") or view.status.get("device") or "-"
    backend = start.get("backend") or view.status.get("backend") or "-"
    started = view.status.get("started_at")
    ended = view.status.get("ended_at") if not view.active else None
    elapsed = (float(ended) if ended else time.time()) - float(started) if started else None
    eval_loss = view.eval_losses[-1] if view.eval_losses else None
    tokens = log.get("tokens_per_s")
    world = start.get("world_size") or 1
    device += f" x{world}" if world > 1 else ""
    return (
        f"loss {number(view.last_loss)} (best {number(view.best_loss)})  eval {number(eval_loss)}  "
        f"lr {number(log.get('learning_rate'), '.2e')}  grad {number(log.get('grad_norm'), '.3f')}  "
        f"{'-' if tokens is None else f'{tokens:,.0f}'} tok/s\n"
        f"mem {memory(log or view.end or start)}  elapsed {duration(elapsed)}  {device} / {backend}"
        + (f"\n{gpus}" if (gpus := gpu_text(log)) else "")
    )


def gpu_text(log: dict[str, Any]) -> str:
    """Each GPU's utilisation and memory from the last log event (NVML, read by the trainer); "" without GPUs."""
    from stylelora_tui.training.estimate import format_bytes

    gpus = log.get("gpus")
    if not isinstance(gpus, list) or not gpus:
        return ""
    parts = []
    for gpu in gpus:
        try:
            parts.append(f"{gpu['index']}: {int(gpu['utilization'])}% {format_bytes(gpu['memory_used'])}")
        except (KeyError, TypeError, ValueError):
            continue  # an odd figure is left out, the others shown
    return ("GPU " + "  ".join(parts)) if parts else ""


def style_series(view: RunView, last: int = 4) -> str:
    """The live samples' style distance to the author so far (lower is closer): the style arriving."""
    if not view.style_distances:
        return ""
    shown = " > ".join(f"{value:.2f}" for value in view.style_distances[-last:])
    return f"  style Δ {'... ' if len(view.style_distances) > last else ''}{shown}"


def style_floor(sample: dict) -> str:
    """The author's own continuation on the same scale: where the sample's distance is heading."""
    floor = sample.get("reference_style_distance")
    return "" if floor is None else f"  style Δ {floor:.2f}"


def run_line(view: RunView, index: int, count: int) -> str:
    total = view.total_steps
    epoch = (view.last_log or {}).get("epoch")
    step = f"step {view.step}/{total}" if total else f"step {view.step}"
    return (
        f"{view.name}  [{view.state.upper()}]  {step}"
        + (f"  epoch {epoch:.2f}" if epoch is not None else "")
        + f"  (run {index + 1}/{count}, [ ] to switch)"
    )


def failure_text(view: RunView, memory_hint: str | None) -> str:
    end = view.end or {}
    error = str(view.status.get("error") or end.get("error") or "the trainer failed without a message")
    kind = view.status.get("error_kind") or end.get("error_kind") or "error"
    if kind != "oom":
        return f"Failed ({kind}): {error}\nThe end of trainer.log is below."
    detail = view.status.get("error_detail") or end.get("error_detail") or error
    return "\n".join(
        [f"Failed (oom): {detail}", PLAIN_OOM_HINT, memory_hint or "Estimating the memory this config needs..."]
    )


def memory_hint_text(run: Run, view: RunView) -> str:
    from stylelora_tui.training.estimate import estimate_for_config, format_bytes

    try:
        estimate = estimate_for_config(run.config(), search_dirs=(run.path.parent.parent,))
    except Exception as exc:  # noqa: BLE001
        return f"Memory estimate unavailable: {exc}"
    if estimate is None:
        return "Memory estimate unavailable: the model's shape is unknown."
    peak = (view.end or {}).get("peak_memory_bytes") or (view.last_log or {}).get("peak_memory_bytes")
    seen = f" (peak before it failed: {format_bytes(peak)})" if peak else ""
    return f"Memory estimate for this config: {format_bytes(estimate.memory.total)}{seen}"
