"""What a reader knows of one run, folded from its events: curves, figures, a snapshot.

``RunState`` is fed events (and status, and trainer.log lines) by the
follower (``runs.follower``); ``RunView`` is the copy a reader takes. Curves
follow ``events.Replay``, the same rule as ``events.training_history``: a
``resume`` from step N drops points past N, and a step seen again replaces the
earlier point, so a live curve equals the one rebuilt from the file.

Memory is bounded: a ``Curve`` keeps the last ``FULL`` points at full
resolution and thins older points (every other one, again and again) so a
curve never holds more than ``FULL + HEAD`` points.
"""

from __future__ import annotations

import bisect
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stylelora_tui.runs.events import EventTail, Replay, clean_number, event_step
from stylelora_tui.runs.run import ACTIVE_STATES, Run

FULL = 2000  # newest points kept at full resolution
HEAD = 2000  # older points, thinned to at most this many
LOG_LINES = 200  # lines of trainer.log kept per tailed run


class Curve:
    """(step, value) points in step order; full resolution for the newest ``FULL``, thinned before.

    A ``Replay`` store: ``put`` inserts or replaces the point at a step (``None``:
    no point there), ``truncate_after`` drops the points past a step.
    """

    def __init__(self, full: int = FULL, head: int = HEAD) -> None:
        self.steps: list[int] = []
        self.values: list[float] = []
        self.full, self.head = full, head
        self.thinned = 0  # how many points were dropped by thinning

    def __len__(self) -> int:
        return len(self.steps)

    def append(self, step: int, value: float) -> None:
        self.steps.append(step)
        self.values.append(value)
        if len(self.steps) > self.full + self.head:
            cut = len(self.steps) - self.full
            kept_steps, kept_values = self.steps[:cut][::2], self.values[:cut][::2]
            self.thinned += cut - len(kept_steps)
            self.steps = kept_steps + self.steps[cut:]
            self.values = kept_values + self.values[cut:]

    def put(self, step: int, value: float | None) -> None:
        if not self.steps or step > self.steps[-1]:
            if value is not None:
                self.append(step, value)
            return
        index = bisect.bisect_left(self.steps, step)
        if self.steps[index] == step:
            if value is None:
                del self.steps[index], self.values[index]
            else:
                self.values[index] = value
        elif value is not None:
            self.steps.insert(index, step)
            self.values.insert(index, value)

    def truncate_after(self, step: int) -> None:
        index = bisect.bisect_right(self.steps, step)
        del self.steps[index:], self.values[index:]


@dataclass
class RunView:
    """A copy of one run's state, safe to read on any thread."""

    name: str
    path: Path
    version: int
    status: dict[str, Any]
    start: dict[str, Any] | None
    last_log: dict[str, Any] | None
    end: dict[str, Any] | None
    sample: dict[str, Any] | None
    warnings: list[str]
    train_steps: list[int]
    train_losses: list[float]
    eval_steps: list[int]
    eval_losses: list[float]
    style_steps: list[int]  # live samples' style distance to the author (lower is closer)
    style_distances: list[float]
    log_lines: list[str]
    log_count: int  # lines ever kept; a reader appends only the new ones
    best_loss: float | None
    last_event_time: float | None
    seconds_per_step: float | None
    events_read: int
    step: int  # the last logged step
    last_loss: float | None

    @property
    def state(self) -> str:
        return str(self.status.get("state", "unknown"))

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def total_steps(self) -> int | None:
        for source in (self.last_log, self.start, self.status):
            if source and source.get("total_steps"):
                return int(source["total_steps"])
        return None

    def duration(self, now: float | None = None) -> float | None:
        started = self.status.get("created_at")
        if not started:
            return None
        ended = self.status.get("ended_at") if not self.active else None
        return max(0.0, float(ended or now or time.time()) - float(started))


@dataclass
class RunState:
    """What the follower knows of one run; changed only under the follower's lock."""

    run: Run
    tail: EventTail
    train: Curve = field(default_factory=Curve)
    eval: Curve = field(default_factory=Curve)
    style: Curve = field(default_factory=Curve)
    status: dict[str, Any] = field(default_factory=dict)
    status_mtime: float = -1.0
    status_checked: float = 0.0
    start: dict[str, Any] | None = None
    last_log: dict[str, Any] | None = None
    end: dict[str, Any] | None = None
    sample: dict[str, Any] | None = None
    warnings: deque = field(default_factory=lambda: deque(maxlen=5))
    best_loss: float | None = None
    rate: deque = field(default_factory=lambda: deque(maxlen=30))  # (time, step) of recent logs
    log_lines: deque = field(default_factory=lambda: deque(maxlen=LOG_LINES))
    log_offset: int = -1
    log_partial: str = ""
    log_count: int = 0
    last_event_time: float | None = None
    events_read: int = 0
    version: int = 0

    def __post_init__(self) -> None:
        self.train_replay = Replay("log", self.train, item=lambda event: clean_number(event.get("loss")))
        self.eval_replay = Replay("eval", self.eval, item=lambda event: clean_number(event.get("eval_loss")))
        self.style_replay = Replay("sample", self.style, item=lambda event: clean_number(event.get("style_distance")))

    @property
    def last_step(self) -> int:
        return self.train_replay.last_step

    def apply(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            kind = event.get("type")
            self.events_read += 1
            self.last_event_time = event.get("time", self.last_event_time)
            if kind == "log":
                self._apply_log(event)
            elif kind == "eval":
                self.eval_replay.feed(event)
            elif kind == "resume":
                self.train_replay.feed(event)
                self.eval_replay.feed(event)
                self.style_replay.feed(event)
                self.best_loss = min(self.train.values, default=None)
                self.rate.clear()
                self.end = None
            elif kind == "start":
                self.start, self.end = event, None
                self.rate.clear()
            elif kind == "end":
                self.end = event
            elif kind == "sample":
                self.sample = event
                self.style_replay.feed(event)
            elif kind == "warning":
                self.warnings.append(str(event.get("message", "")))

    def _apply_log(self, event: dict[str, Any]) -> None:
        step = event_step(event)
        if step is None:
            return  # not a step: Replay skips it too
        newest = step > self.last_step
        self.train_replay.feed(event)
        if step == self.last_step:  # the newest step (or it again): its figures are the current ones
            self.last_log = event
        loss = clean_number(event.get("loss"))
        if newest:
            self.rate.append((float(event.get("time", 0.0)), step))
            if loss is not None and (self.best_loss is None or loss < self.best_loss):
                self.best_loss = loss
        else:  # a point replaced in the middle: the best may have gone
            self.best_loss = min(self.train.values, default=None)

    def seconds_per_step(self) -> float | None:
        if len(self.rate) < 2:
            return None
        (t0, s0), (t1, s1) = self.rate[0], self.rate[-1]
        return (t1 - t0) / (s1 - s0) if s1 > s0 and t1 > t0 else None

    def view(self, name: str, *, curves: bool = True, log: bool = True) -> RunView:
        return RunView(
            name=name,
            path=self.run.path,
            version=self.version,
            status=dict(self.status),
            start=self.start,
            last_log=self.last_log,
            end=self.end,
            sample=self.sample,
            warnings=list(self.warnings),
            train_steps=list(self.train.steps) if curves else [],
            train_losses=list(self.train.values) if curves else [],
            eval_steps=list(self.eval.steps) if curves else [],
            eval_losses=list(self.eval.values) if curves else [],
            style_steps=list(self.style.steps),
            style_distances=list(self.style.values),
            log_lines=list(self.log_lines) if log else [],
            log_count=self.log_count,
            best_loss=self.best_loss,
            last_event_time=self.last_event_time,
            seconds_per_step=self.seconds_per_step(),
            events_read=self.events_read,
            step=max(self.last_step, 0),
            last_loss=self.train.values[-1] if self.train.values else None,
        )
