"""The run's append-only event log: JSON lines with a versioned schema.

The trainer appends one line per event and flushes it, so any reader (the
CLI, the app, a second app on the same workspace) can tail the file and
rebuild the whole history at any time. Every event has:

- ``v``: schema version (``SCHEMA_VERSION``)
- ``type``: ``resume``, ``start``, ``log``, ``eval``, ``checkpoint``,
  ``sample``, ``warning``, ``summary``, ``adapter``, ``end`` (more types may
  be added; readers skip unknown ones)
- ``time``: Unix time in seconds

and the fields of its type, documented in ``docs/events.md``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

SCHEMA_VERSION = 1
EVENT_TYPES = ("resume", "start", "log", "eval", "checkpoint", "sample", "warning", "summary", "adapter", "end")


class EventWriter:
    """Appends events to a log, one flushed line each (used by the trainer)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Line buffering would still hold a line in Python's buffer across a
        # crash; we flush explicitly after each write instead.
        self._file = open(self.path, "a", encoding="utf-8")

    def write(self, type_: str, *, durable: bool = False, **fields: Any) -> dict[str, Any]:
        event = {"v": SCHEMA_VERSION, "type": type_, "time": round(time.time(), 3), **fields}
        self._file.write(json.dumps(event, default=_json_default, allow_nan=False) + "\n")
        self._file.flush()
        if durable:
            os.fsync(self._file.fileno())
        return event

    def close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()

    def __enter__(self) -> "EventWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _json_default(value: Any) -> Any:
    # numpy / torch scalars reach us from the trainer's logs.
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to the event log")


def clean_number(value: Any) -> float | None:
    """A finite float, or None (JSON has no NaN; the log stays strict JSON)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


@dataclass
class EventTail:
    """Reads new complete lines from a growing event log.

    A partially written last line is left for the next read, so a reader
    racing the writer never sees half an event. Malformed lines are counted
    and skipped, never fatal.
    """

    path: Path
    offset: int = 0
    malformed: int = 0
    _pending: bytes = field(default=b"", repr=False)

    def read(self, max_bytes: int | None = None) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read() if max_bytes is None else handle.read(max_bytes)
        except FileNotFoundError:
            return []
        if not chunk:
            return []
        self.offset += len(chunk)
        data = self._pending + chunk
        *lines, self._pending = data.split(b"\n")
        events = []
        for line in lines:
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                self.malformed += 1
                continue
            if isinstance(event, dict) and "type" in event:
                events.append(event)
            else:
                self.malformed += 1
        return events


def read_events(path: Path) -> list[dict[str, Any]]:
    """Every complete event in a log."""
    return EventTail(Path(path)).read()


def event_step(event: dict[str, Any], key: str = "step") -> int | None:
    """The event's step as an int (0 when absent); None when it is not a number (the event is skipped)."""
    try:
        return int(event.get(key, 0))
    except (TypeError, ValueError):
        return None


class StepTable:
    """Items by step, in step order: the store the batch histories use."""

    def __init__(self) -> None:
        self.by_step: dict[int, Any] = {}

    def put(self, step: int, item: Any) -> None:
        self.by_step[step] = item

    def truncate_after(self, step: int) -> None:
        self.by_step = {s: item for s, item in self.by_step.items() if s <= step}

    def items(self) -> list[Any]:
        return [self.by_step[step] for step in sorted(self.by_step)]


class Replay:
    """The one replay rule for events of one type (``log``, ``eval``, ``sample``), fed one event at a time.

    A resume restarts from a checkpoint at step N: events past N written
    before the resume were undone (the trainer redoes those steps), so they
    are dropped; a step seen again replaces its earlier event. The batch
    histories below and the live follower (``runs.follower``) both feed this
    class, so a curve drawn live and one rebuilt from the file agree.

    ``store`` holds the outcome in step order; it needs ``put(step, item)``
    (insert, or replace the item at that step) and ``truncate_after(step)``.
    ``item`` picks what is stored from an event (the event itself by default).
    """

    def __init__(self, type_: str, store: Any = None, item: Callable[[dict[str, Any]], Any] | None = None) -> None:
        self.type = type_
        self.store = StepTable() if store is None else store
        self.item = item or (lambda event: event)
        self.last_step = -1  # the highest step held (a resume lowers it to the checkpoint's step)

    def feed(self, event: dict[str, Any]) -> bool:
        """Apply one event; True when it changed the store."""
        kind = event.get("type")
        if kind == "resume":
            from_step = event_step(event, "from_step")
            if from_step is None:
                return False
            self.store.truncate_after(from_step)
            self.last_step = min(self.last_step, from_step)
            return True
        step = event_step(event) if kind == self.type else None
        if step is None:
            return False
        self.store.put(step, self.item(event))
        self.last_step = max(self.last_step, step)
        return True


def _replay(events: Iterable[dict[str, Any]], type_: str) -> list[dict[str, Any]]:
    """Events of ``type_`` as the training finally happened, one per step (``Replay``'s rule)."""
    replay = Replay(type_)
    for event in events:
        replay.feed(event)
    return replay.store.items()


def training_history(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Log events with strictly increasing steps: nothing missing, nothing doubled."""
    return _replay(events, "log")


def eval_history(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Eval-loss events, with the same resume rule as ``training_history``."""
    return _replay(events, "eval")


def sample_history(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Live-sample events (with their ``style_distance``), with the same resume rule."""
    return _replay(events, "sample")


def last_of(events: Iterable[dict[str, Any]], type_: str) -> dict[str, Any] | None:
    found = None
    for event in events:
        if event.get("type") == type_:
            found = event
    return found


def iter_type(events: Iterable[dict[str, Any]], type_: str) -> Iterator[dict[str, Any]]:
    return (event for event in events if event.get("type") == type_)
