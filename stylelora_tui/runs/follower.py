"""Follow the runs of a workspace (or one run) as their event logs grow; no Textual.

Toolong's tailing pattern, with callbacks: the follower polls run directories
for new bytes (``EventTail``, never half a line), folds events into per-run
state (``runs.run_state``) under a lock, and reports:

- ``on_events(name, events)``: every batch of new events of a run, in order
  (``stylelora-tui attach`` prints from it);
- ``on_change()``: something changed; at most ``max_rate`` times a second,
  coalesced (the app posts one ``RunsChanged`` message from it).

Readers take a copied ``RunView`` snapshot at any time. Use it with a thread
(``start``/``stop``) or synchronously (``poll_once``), e.g. from a notebook::

    follower = RunFollower.of_run(workspace.find_run("lab"))
    follower.poll_once()
    view = follower.view(follower.names()[0])
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Iterable

from stylelora_tui.runs.run import ACTIVE_STATES, Run
from stylelora_tui.runs.run_state import FULL, HEAD, Curve, RunState, RunView
from stylelora_tui.runs.workspace import Workspace

__all__ = ["FULL", "HEAD", "Curve", "RunFollower", "RunView"]
READ_CHUNK = 4 << 20  # bytes of events.jsonl parsed per read


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
    def of_run(cls, run: Run, *, tail_log: bool = False, **options: Any) -> RunFollower:
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
