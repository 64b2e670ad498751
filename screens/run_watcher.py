"""One background thread per app that follows every run of the workspace.

Toolong's tailing pattern: the thread polls run directories for new bytes
(``EventTail``, never half a line), folds events into per-run state under a
lock, and posts one ``RunsChanged`` message (``can_replace``: a newer one
replaces a pending one) at most ``max_rate`` times a second. Screens then take
a copied ``RunView`` snapshot on the UI thread. Whatever the event rate, the UI
thread handles a few updates a second, and it alone touches widgets.

Memory is bounded: a ``Curve`` keeps the last ``FULL`` points at full
resolution and thins older points (every other one, again and again) so a
curve never holds more than ``FULL + HEAD`` points.

Resume semantics follow ``events.training_history``: a ``resume`` from step N
drops points past N, and a log step at or below the last one is ignored, so a
re-attached app shows the curve with nothing missing and nothing doubled.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textual.message import Message

from stylelora_tui.runs.events import EventTail
from stylelora_tui.runs.run import ACTIVE_STATES, Run
from stylelora_tui.runs.workspace import Workspace

FULL = 2000  # newest points kept at full resolution
HEAD = 2000  # older points, thinned to at most this many
LOG_LINES = 200  # lines of trainer.log kept per followed run
READ_CHUNK = 4 << 20  # bytes of events.jsonl parsed per read


class RunsChanged(Message):
    """Something changed in one or more runs; a newer one replaces a pending one."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunsChanged)


class Curve:
    """(step, value) points; full resolution for the newest ``FULL``, thinned before."""

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

    def replace(self, step: int, value: float) -> None:
        """Set the value at ``step`` (eval: a repeated step replaces the old point)."""
        index = bisect.bisect_left(self.steps, step)
        if index < len(self.steps) and self.steps[index] == step:
            del self.steps[index], self.values[index]
        self.truncate_after(step)
        self.append(step, value)

    def truncate_after(self, step: int) -> None:
        index = bisect.bisect_right(self.steps, step)
        del self.steps[index:], self.values[index:]


@dataclass
class RunView:
    """A copy of one run's state for the UI thread."""

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
    log_lines: list[str]
    log_count: int  # lines ever kept; the UI appends only the new ones
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
class _RunState:
    run: Run
    tail: EventTail
    train: Curve = field(default_factory=Curve)
    eval: Curve = field(default_factory=Curve)
    status: dict[str, Any] = field(default_factory=dict)
    status_mtime: float = -1.0
    status_checked: float = 0.0
    start: dict[str, Any] | None = None
    last_log: dict[str, Any] | None = None
    end: dict[str, Any] | None = None
    sample: dict[str, Any] | None = None
    warnings: deque = field(default_factory=lambda: deque(maxlen=5))
    best_loss: float | None = None
    last_step: int = -1
    rate: deque = field(default_factory=lambda: deque(maxlen=30))  # (time, step) of recent logs
    log_lines: deque = field(default_factory=lambda: deque(maxlen=LOG_LINES))
    log_offset: int = -1
    log_partial: str = ""
    log_count: int = 0
    last_event_time: float | None = None
    events_read: int = 0
    version: int = 0

    def apply(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            kind = event.get("type")
            self.events_read += 1
            self.last_event_time = event.get("time", self.last_event_time)
            if kind == "log":
                step = int(event.get("step", 0))
                if step <= self.last_step:
                    continue  # already seen (training_history's rule)
                self.last_step = step
                loss = event.get("loss")
                if loss is not None:
                    self.train.append(step, float(loss))
                    if self.best_loss is None or loss < self.best_loss:
                        self.best_loss = float(loss)
                self.last_log = event
                self.rate.append((float(event.get("time", 0.0)), step))
            elif kind == "eval" and event.get("eval_loss") is not None:
                self.eval.replace(int(event.get("step", 0)), float(event["eval_loss"]))
            elif kind == "resume":
                from_step = int(event.get("from_step", 0))
                self.train.truncate_after(from_step)
                self.eval.truncate_after(from_step)
                self.last_step = min(self.last_step, from_step)
                self.best_loss = min(self.train.values) if self.train.values else None
                self.rate.clear()
                self.end = None
            elif kind == "start":
                self.start, self.end = event, None
                self.rate.clear()
            elif kind == "end":
                self.end = event
            elif kind == "sample":
                self.sample = event
            elif kind == "warning":
                self.warnings.append(str(event.get("message", "")))

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
            log_lines=list(self.log_lines) if log else [],
            log_count=self.log_count,
            best_loss=self.best_loss,
            last_event_time=self.last_event_time,
            seconds_per_step=self.seconds_per_step(),
            events_read=self.events_read,
            step=max(self.last_step, 0),
            last_loss=self.train.values[-1] if self.train.values else None,
        )


class RunWatcher:
    """Follows ``workspace/runs``; ``subscribe`` widgets to get ``RunsChanged``."""

    def __init__(self, workspace: Workspace, *, interval: float = 0.05, idle_interval: float = 0.5, max_rate: float = 6.0) -> None:
        self.workspace = workspace
        self.interval, self.idle_interval = interval, idle_interval
        self.min_gap = 1.0 / max_rate
        self._runs: dict[str, _RunState] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._subscribers: list[Any] = []
        self._followed: set[str] = set()
        self._thread: threading.Thread | None = None
        self._next_scan = 0.0
        self.posted = 0
        self.last_error: str | None = None  # the last poll failure, for debugging

    # ----------------------------------------------------------------- UI side

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="run-watcher", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def subscribe(self, target: Any) -> None:
        self._subscribers.append(target)

    def unsubscribe(self, target: Any) -> None:
        if target in self._subscribers:
            self._subscribers.remove(target)

    def follow(self, name: str | None) -> None:
        """Keep the trainer.log tail of this run (the one on screen)."""
        self._followed = {name} if name else set()
        self.poke()

    def poke(self) -> None:
        """Rescan the runs folder and poll at once (after a launch, delete...)."""
        self._next_scan = 0.0
        self._wake.set()

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._runs)

    def view(self, name: str, *, curves: bool = True, log: bool = True) -> RunView | None:
        with self._lock:
            state = self._runs.get(name)
            return state.view(name, curves=curves, log=log) if state else None

    def views(self, *, curves: bool = False) -> list[RunView]:
        with self._lock:
            return [self._runs[name].view(name, curves=curves, log=False) for name in sorted(self._runs)]

    # ----------------------------------------------------------------- thread side

    def poll_once(self) -> bool:
        """One pass over every run; True when something changed."""
        now = time.monotonic()
        changed = False
        if now >= self._next_scan:
            changed |= self._scan()
            self._next_scan = now + 2.0
        with self._lock:
            items = list(self._runs.items())
        for name, state in items:
            try:
                changed |= self._poll_run(name, state, now)
            except OSError:
                continue  # a run deleted under our feet: the next scan drops it
        return changed

    def _loop(self) -> None:
        last_post, pending = 0.0, False
        while not self._stopped.is_set():
            try:
                pending |= self.poll_once()
            except Exception as exc:  # noqa: BLE001 - the watcher must outlive any odd run directory
                self.last_error = f"{type(exc).__name__}: {exc}"  # kept for debugging; the next poll retries
            now = time.monotonic()
            if pending and now - last_post >= self.min_gap:
                for target in list(self._subscribers):
                    target.post_message(RunsChanged())
                self.posted += 1
                last_post, pending = now, False
            busy = pending or any(s.status.get("state") in ACTIVE_STATES for s in list(self._runs.values()))
            wait = self.interval if busy else self.idle_interval
            if pending:  # wake exactly when the next post is allowed
                wait = min(wait, max(0.0, last_post + self.min_gap - now))
            self._wake.wait(wait)
            self._wake.clear()

    def _scan(self) -> bool:
        found = {run.name: run for run in self.workspace.runs()}
        with self._lock:
            gone = [name for name in self._runs if name not in found]
            for name in gone:
                del self._runs[name]
            added = [name for name in found if name not in self._runs]
            for name in added:
                self._runs[name] = _RunState(run=found[name], tail=found[name].tail())
        return bool(gone or added)

    def _poll_run(self, name: str, state: _RunState, now: float) -> bool:
        changed = False
        run = state.run
        # Events: new complete lines only, in bounded chunks.
        while True:
            events = state.tail.read(READ_CHUNK)
            if not events:
                break
            with self._lock:
                state.apply(events)
                state.version += 1
            changed = True
        # Status: on a change of the file, and every second while active
        # (Run.status notices a vanished trainer and records it as failed).
        try:
            mtime = run.status_path.stat().st_mtime
        except FileNotFoundError:
            mtime = 0.0
        active = state.status.get("state") in ACTIVE_STATES
        if mtime != state.status_mtime or (active and now - state.status_checked >= 1.0):
            status = run.status()
            state.status_mtime, state.status_checked = mtime, now
            if status != state.status:
                with self._lock:
                    state.status = status
                    state.version += 1
                changed = True
                # An end recorded by status() lands in the log: read it now.
                changed |= self._read_more(state)
        if name in self._followed:
            changed |= self._tail_log(state)
        return changed

    def _read_more(self, state: _RunState) -> bool:
        events = state.tail.read(READ_CHUNK)
        if events:
            with self._lock:
                state.apply(events)
                state.version += 1
        return bool(events)

    def _tail_log(self, state: _RunState) -> bool:
        path = state.run.log_path
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return False
        if state.log_offset < 0 or size < state.log_offset:
            state.log_offset = max(0, size - 64 * 1024)  # first look: the last 64 KB
            state.log_partial = ""
        if size == state.log_offset:
            return False
        with open(path, "rb") as handle:
            handle.seek(state.log_offset)
            chunk = handle.read(min(size - state.log_offset, 1 << 20))
        state.log_offset += len(chunk)
        text = state.log_partial + chunk.decode("utf-8", errors="replace")
        *lines, state.log_partial = text.split("\n")
        with self._lock:
            for line in lines:
                line = line.rstrip("\r").rsplit("\r", 1)[-1]  # progress bars: keep the last redraw
                if line.strip():
                    state.log_lines.append(line)
                    state.log_count += 1
            state.version += 1
        return True
