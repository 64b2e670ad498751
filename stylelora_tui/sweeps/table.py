"""A sweep's table: one row per trial with its run's figures, the best marked, sortable.

Shared by ``runs --sweep NAME``, ``sweep status`` and the app's Runs section
(which builds it in a worker thread). Each run's figures are folded from its
event log by the same replay rules as every other reader (``runs.events``):
final train loss, best held-out loss, style distance, training time and peak
memory. The style distance is the run's compare.json adapted Delta when the
run has one (a full comparison: several prompts and samples), else its last
live sample's ``style_distance``; ``style_source`` says which.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Iterable

from stylelora_tui.runs.events import clean_number, eval_history, sample_history, training_history
from stylelora_tui.runs.run import ACTIVE_STATES, Run

# The sortable columns, in table order: (key, header).
COLUMNS: tuple[tuple[str, str], ...] = (
    ("number", "#"), ("run", "Run"), ("params", "Params"), ("state", "State"), ("steps", "Steps"), ("final_train_loss", "Final"),
    ("best_eval_loss", "Best eval"), ("style_distance", "Style"), ("duration_s", "Time"), ("peak_memory_bytes", "Peak mem"),
)
SORT_KEYS = tuple(key for key, _ in COLUMNS)


def training_seconds(events: Iterable[dict[str, Any]], now: float | None = None) -> float | None:
    """Seconds spent training: each session from its ``start`` (or ``resume``) to its ``end``.

    Time a run spent stopped between a stop and its resume is not counted; a
    session still going counts to its last event (or ``now``).
    """
    total, began, last, seen = 0.0, None, None, False
    for event in events:
        when = clean_number(event.get("time"))
        if when is None:
            continue
        last = when
        kind = event.get("type")
        if kind in ("resume", "start") and began is None:
            began, seen = when, True
        elif kind == "end" and began is not None:
            total += max(0.0, when - began)
            began = None
    if began is not None:
        total += max(0.0, (now if now is not None else last or began) - began)
    return round(total, 1) if seen else None


def peak_memory(events: Iterable[dict[str, Any]]) -> tuple[int | None, str | None]:
    """The highest ``peak_memory_bytes`` of any event, and its ``memory_kind`` (gpu or rss)."""
    peak, kind = None, None
    for event in events:
        value = clean_number(event.get("peak_memory_bytes"))
        if value is not None and (peak is None or value > peak):
            peak, kind = int(value), event.get("memory_kind")
    return peak, kind


def compare_delta(run: Run) -> float | None:
    """The adapted side's Burrows's Delta in the run's compare.json, if it has a readable one."""
    from stylelora_tui.compare.publish import load_compare_json

    data = load_compare_json(run)
    variants = ((data or {}).get("style") or {}).get("variants")
    scores = variants.get(run.name) if isinstance(variants, dict) else None
    return clean_number(scores.get("delta")) if isinstance(scores, dict) else None


def no_figures() -> dict[str, Any]:
    return {"run_state": None, "steps": None, "total_steps": None, "budget_stop": False, "final_train_loss": None, "best_eval_loss": None, "style_distance": None,
            "style_source": None, "duration_s": None, "peak_memory_bytes": None, "memory_kind": None}


_CACHE: dict[Path, tuple[tuple[Any, ...], dict[str, Any]]] = {}  # a finished run's figures, by its files' stamps


def _stamp(run: Run) -> tuple[Any, ...]:
    stamps = []
    for path in (run.events_path, run.status_path, run.path / "compare.json"):
        try:
            stat = path.stat()
            stamps.append((stat.st_mtime_ns, stat.st_size))
        except OSError:
            stamps.append(None)
    return tuple(stamps)


def run_figures(run: Run, now: float | None = None) -> dict[str, Any]:
    """A run's figures for the sweep table (every field None when the run has no folder yet).

    A run that is not training is read again only when one of its files changed,
    so a table refreshed while one trial trains reads that trial's log alone.
    """
    figures = no_figures()
    if not run.config_path.exists():
        return figures
    stamp = _stamp(run)
    cached = _CACHE.get(run.path)
    if cached is not None and cached[0] == stamp:
        return dict(cached[1])
    status = run.status()
    state = status.get("state", "unknown")
    events = run.events()
    losses = [loss for e in training_history(events) if (loss := clean_number(e.get("loss"))) is not None]
    evals = [loss for e in eval_history(events) if (loss := clean_number(e.get("eval_loss"))) is not None]
    styles = [d for e in sample_history(events) if (d := clean_number(e.get("style_distance"))) is not None]
    delta = compare_delta(run)
    figures.update(
        run_state=state,
        # Trials that ended at train.max_minutes saw fewer steps than the others: the table says so.
        steps=clean_number(status.get("step")), total_steps=clean_number(status.get("total_steps")),
        budget_stop=any(e.get("type") == "budget" for e in events),
        final_train_loss=losses[-1] if losses else None,
        best_eval_loss=min(evals) if evals else None,
        style_distance=delta if delta is not None else (styles[-1] if styles else None),
        style_source="compare" if delta is not None else ("sample" if styles else None),
        duration_s=training_seconds(events, now=(now or time.time()) if state in ACTIVE_STATES else None),
    )
    figures["peak_memory_bytes"], figures["memory_kind"] = peak_memory(events)
    if state not in ACTIVE_STATES:  # a training run's time grows with the clock: never cached
        _CACHE[run.path] = (stamp, dict(figures))
    return figures


def mark_best(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Set ``best`` on the row with the lowest best eval loss (ties: the lower trial number; none: no row)."""
    scored = [row for row in rows if row.get("best_eval_loss") is not None]
    winner = min(scored, key=lambda row: (row["best_eval_loss"], row["number"]), default=None)
    for row in rows:
        row["best"] = row is winner
    return rows


def sweep_table(sweep: Any, now: float | None = None) -> list[dict[str, Any]]:
    """Every trial of ``sweep`` (a ``sweeps.sweep.Sweep``) with its run's figures, in trial order, the best marked."""
    runs_dir: Path = sweep.workspace.runs_dir
    rows = []
    for trial in sorted(sweep.trials(), key=lambda t: t["number"]):
        figures = run_figures(Run(runs_dir / trial["run"]), now) if trial["run"] else no_figures()
        rows.append({
            "number": trial["number"], "run": trial["run"], "params": trial["params"], "state": trial["state"],
            "objective": trial["eval_loss"], **figures,
        })
    return mark_best(rows)


def _sort_value(row: dict[str, Any], key: str) -> Any:
    value = row.get(key)
    if key == "params" and isinstance(value, dict):
        return tuple((k, str(v)) for k, v in sorted(value.items()))
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def sort_rows(rows: list[dict[str, Any]], key: str, *, descending: bool = False) -> list[dict[str, Any]]:
    """The rows sorted by ``key`` (one of ``SORT_KEYS``); rows without a value always last, ties by trial number."""
    if key not in SORT_KEYS:
        raise ValueError(f"no column {key!r} to sort by; one of {', '.join(SORT_KEYS)}")
    present = [row for row in rows if _sort_value(row, key) is not None]
    missing = [row for row in rows if _sort_value(row, key) is None]
    present.sort(key=lambda row: row["number"])
    present.sort(key=lambda row: _sort_value(row, key), reverse=descending)  # stable: ties keep trial order
    return present + sorted(missing, key=lambda row: row["number"])


# --------------------------------------------------------------------------- text


def params_text(params: dict[str, Any]) -> str:
    """``r=8 lr=0.0001``: each key's last part and its value."""
    return " ".join(f"{key.rpartition('.')[2]}={value}" for key, value in sorted(params.items()))


def fmt_loss(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def fmt_bytes(value: int | None, kind: str | None = None) -> str:
    if value is None:
        return "-"
    text = f"{value / 2**30:.1f}G" if value >= 2**30 else f"{value / 2**20:.0f}M"
    return f"{text} {kind}" if kind else text


def fmt_steps(row: dict[str, Any]) -> str:
    """Steps done of the run's total; ``!`` when it ended at its time budget (train.max_minutes)."""
    steps, total = row.get("steps"), row.get("total_steps")
    if steps is None:
        return "-"
    return f"{steps:.0f}" + (f"/{total:.0f}" if total else "") + ("!" if row.get("budget_stop") else "")


def fmt_style(row: dict[str, Any]) -> str:
    value = row.get("style_distance")
    if value is None:
        return "-"
    return f"{value:.3f}" + ("c" if row.get("style_source") == "compare" else "")


def text_table(rows: list[dict[str, Any]]) -> str:
    """The table as text: the best trial marked ``*``; a style figure from compare.json ends in ``c``."""
    header = f"  {'#':>3} {'RUN':<32} {'STATE':<9} {'STEPS':>7} {'FINAL':>7} {'BEST EVAL':>9} {'STYLE':>7} {'TIME':>7} {'PEAK MEM':>11}  PARAMS"
    lines = [header]
    for row in rows:
        lines.append(
            f"{'*' if row.get('best') else ' '} {row['number']:>3} {row['run'] or '-':<32} {row['run_state'] or row['state']:<9} "
            f"{fmt_steps(row):>7} {fmt_loss(row['final_train_loss']):>7} {fmt_loss(row['best_eval_loss']):>9} {fmt_style(row):>7} "
            f"{fmt_seconds(row['duration_s']):>7} {fmt_bytes(row['peak_memory_bytes'], row['memory_kind']):>11}  "
            f"{params_text(row['params'])}"
        )
    lines.append("* best (lowest best eval loss); style: last live sample's Delta, or compare.json's when it ends in c")
    if any(row.get("budget_stop") for row in rows):
        lines.append("! ended at its time budget (train.max_minutes) before its last step: compare such trials with care")
    return "\n".join(lines)
