"""Follow the runs of a workspace (or one run) as their event logs grow; no Textual.

Toolong's tailing pattern, with callbacks: the follower polls run directories
for new bytes (``EventTail``, never half a line), folds events into per-run
state under a lock, and reports:

- ``on_events(name, events)``: every batch of new events of a run, in order
  (``stylelora-tui attach`` prints from it);
- ``on_change()``: something changed; at most ``max_rate`` times a second,
  coalesced (the app posts one ``RunsChanged`` message from it).

Readers take a copied ``RunView`` snapshot at any time. Use it with a thread
(``start``/``stop``) or synchronously (``poll_once``), e.g. from a notebook::

    follower = RunFollower.of_run(workspace.find_run("lab"))
    follower.poll_once()
    view = follower.view(follower.names()[0])

Curves follow ``events.Replay``, the same rule as ``events.training_history``:
a ``resume`` from step N drops points past N, and a step seen again replaces
the earlier point, so a live curve equals the one rebuilt from the file.

Memory is bounded: a ``Curve`` keeps the last ``FULL`` points at full
resolution and thins older points (every other one, again and again) so a
curve never holds more than ``FULL + HEAD`` points.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from stylelora_tui.runs.events import EventTail, Replay, clean_number
from stylelora_tui.runs.run import ACTIVE_STATES, Run
from stylelora_tui.runs.workspace import Workspace

FULL = 2000  # newest points kept at full resolution
HEAD = 2000  # older points, thinned to at most this many
LOG_LINES = 200  # lines of trainer.log kept per tailed run
READ_CHUNK = 4 << 20  # bytes of events.jsonl parsed per read


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
            elif kind == "warning":
                self.warnings.append(str(event.get("message", "")))

    def _apply_log(self, event: dict[str, Any]) -> None:
        step = int(event.get("step", 0))
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
            log_lines=list(self.log_lines) if log else [],
            log_count=self.log_count,
            best_loss=self.best_loss,
            last_event_time=self.last_event_time,
            seconds_per_step=self.seconds_per_step(),
            events_read=self.events_read,
            step=max(self.last_step, 0),
            last_loss=self.train.values[-1] if self.train.values else None,
        )


OnChange = Callable[[], None]
OnEvents = Callable[[str, list[dict[str, Any]]], None]


class RunFollower:
    """Follows every run of ``workspace/runs`` (or the runs given to ``of_run``)."""

    def __init__(
        self, workspace: Workspace | None, *, on_change: OnChange | None = None, on_events: OnEvents | None = None,
        interval: float = 0.05, idle_interval: float = 0.5, max_rate: float = 6.0, runs: Iterable[Run] | None = None,
    ) -> None:
        if workspace is None and runs is None:
            raise ValueError("give a workspace, or the runs to follow")
        self.workspace = workspace
        self.fixed_runs = None if runs is None else {run.name: run for run in runs}
        self.on_change, self.on_events = on_change, on_events
        self.interval, self.idle_interval = interval, idle_interval
        self.min_gap = 1.0 / max_rate
        self._runs: dict[str, RunState] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._log_tailed: set[str] = set()
        self._thread: threading.Thread | None = None
        self._next_scan = 0.0
        self.notified = 0  # on_change calls made
        self.last_error: str | None = None  # the last poll failure, for debugging

    @classmethod
    def of_run(cls, run: Run, *, tail_log: bool = False, **options: Any) -> "RunFollower":
        """A follower of this one run (it may live outside any workspace)."""
        follower = cls(None, runs=[run], **options)
        if tail_log:
            follower.tail_log_of(run.name)
        return follower

    # ----------------------------------------------------------------- reader side

    def start(self) -> None:
        """Poll in a background thread, calling ``on_change`` as things change."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="run-follower", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def tail_log_of(self, name: str | None) -> None:
        """Keep the trainer.log tail of this run (only one: reading logs costs)."""
        self._log_tailed = {name} if name else set()
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

    # ----------------------------------------------------------------- polling

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
        last_notice, pending = 0.0, False
        while not self._stopped.is_set():
            try:
                pending |= self.poll_once()
            except Exception as exc:  # noqa: BLE001 - the follower must outlive any odd run directory
                self.last_error = f"{type(exc).__name__}: {exc}"  # kept for debugging; the next poll retries
            now = time.monotonic()
            if pending and now - last_notice >= self.min_gap:
                self._notify()
                last_notice, pending = now, False
            with self._lock:
                busy = pending or any(s.status.get("state") in ACTIVE_STATES for s in self._runs.values())
            wait = self.interval if busy else self.idle_interval
            if pending:  # wake exactly when the next notice is allowed
                wait = min(wait, max(0.0, last_notice + self.min_gap - now))
            self._wake.wait(wait)
            self._wake.clear()

    def _notify(self) -> None:
        self.notified += 1
        if self.on_change is not None:
            try:
                self.on_change()
            except Exception as exc:  # noqa: BLE001 - a failing listener must not stop the others' updates
                self.last_error = f"on_change: {type(exc).__name__}: {exc}"

    def _scan(self) -> bool:
        if self.fixed_runs is not None:
            found = {name: run for name, run in self.fixed_runs.items() if run.path.is_dir()}
        else:
            found = {run.name: run for run in self.workspace.runs()}
        with self._lock:
            gone = [name for name in self._runs if name not in found]
            for name in gone:
                del self._runs[name]
            added = [name for name in found if name not in self._runs]
            for name in added:
                self._runs[name] = RunState(run=found[name], tail=found[name].tail())
        return bool(gone or added)

    def _poll_run(self, name: str, state: RunState, now: float) -> bool:
        # Events: new complete lines only, in bounded chunks.
        changed = False
        while self._read_more(name, state):
            changed = True
        # Status: on a change of the file, and every second while active
        # (Run.status notices a vanished trainer and records it as failed).
        run = state.run
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
                changed |= self._read_more(name, state)
        if name in self._log_tailed:
            changed |= self._tail_log(state)
        return changed

    def _read_more(self, name: str, state: RunState) -> bool:
        events = state.tail.read(READ_CHUNK)
        if events:
            with self._lock:
                state.apply(events)
                state.version += 1
            if self.on_events is not None:
                self.on_events(name, events)
        return bool(events)

    def _tail_log(self, state: RunState) -> bool:
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
