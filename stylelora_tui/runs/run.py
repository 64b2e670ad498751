"""A run's directory: its files, its status (under a lock) and its history.

A run is a directory under the workspace's ``runs/``:

- ``config.yaml``: the resolved config (absolute paths)
- ``events.jsonl``: the append-only event log (see ``events``)
- ``status.json``: state, pid, host, times, exit code, error
- ``trainer.log``: the trainer process's own stdout and stderr
- ``checkpoints/checkpoint-N/``: Trainer checkpoints (resume points)
- ``adapter/``: the final LoRA adapter (``save_pretrained``, safetensors)

The trainer outlives whoever started it; anyone can re-attach by reading the
directory. Status writes are atomic (write, then rename) and serialised with
a file lock, so two app instances and the trainer never clobber each other.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

from stylelora_tui.runs.events import EventTail, last_of, read_events, sample_history, training_history

ACTIVE_STATES = ("starting", "running", "stopping")
FINAL_STATES = ("completed", "stopped", "failed")



@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``folder/.lock`` for the duration of the block (a run's, a sweep's)."""
    with open(folder / ".lock", "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

class RunError(RuntimeError):
    """A run action that cannot be done, with a message for the user."""


def timestamp() -> float:
    return round(time.time(), 3)


def write_json_atomically(path: Path, data: Mapping[str, Any]) -> None:
    """Write, then rename: a reader sees the old file or the new one. A failed write leaves no temp file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise


def process_start_time(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def pid_alive(pid: int | None, create_time: float | None = None) -> bool:
    """Is this process running (not a zombie, and not a recycled pid)?"""
    if not pid:
        return False
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        if create_time is not None and abs(process.create_time() - create_time) > 1.0:
            return False
        return True
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


class Run:
    """One training run's directory."""

    def __init__(self, path: Path):
        self.path = Path(path).resolve()

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @property
    def name(self) -> str:
        return self.path.name

    config_path = property(lambda self: self.path / "config.yaml")
    events_path = property(lambda self: self.path / "events.jsonl")
    status_path = property(lambda self: self.path / "status.json")
    log_path = property(lambda self: self.path / "trainer.log")
    checkpoints_dir = property(lambda self: self.path / "checkpoints")
    adapter_dir = property(lambda self: self.path / "adapter")

    # ----------------------------------------------------------------- config

    def config(self) -> dict[str, dict[str, Any]]:
        from stylelora_tui import config as config_mod

        return config_mod.load(self.config_path, check_paths=False)

    # ----------------------------------------------------------------- status

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """An exclusive lock on this run (status updates, launches, stops)."""
        self.path.mkdir(parents=True, exist_ok=True)
        with folder_lock(self.path):
            yield

    def read_status(self) -> dict[str, Any]:
        try:
            data = json.loads(self.status_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"state": "new"}
        except (OSError, json.JSONDecodeError) as exc:
            return {"state": "unknown", "error": f"unreadable status file {self.status_path}: {exc}"}
        return data if isinstance(data, dict) else {"state": "unknown"}

    def update_status(self, **fields: Any) -> dict[str, Any]:
        with self.lock():
            status = self.read_status()
            if status.get("state") in ("new", "unknown"):
                status = {}
            status.update(fields)
            status["updated_at"] = timestamp()
            write_json_atomically(self.status_path, status)
            return status

    def status(self) -> dict[str, Any]:
        """The status, with a vanished trainer detected and recorded as failed.

        A trainer killed with SIGKILL (or a machine reboot) never writes its end
        event; its state would say "running" forever. We check its pid (on the
        same host) and, if it is gone, record the failure once, in both the
        status file and the event log, so every viewer agrees. Reading never
        needs a write: on a full or read-only disk the failure is returned
        unrecorded.
        """
        status = self.read_status()
        if status.get("state") not in ACTIVE_STATES:
            return status
        if status.get("host") not in (None, socket.gethostname()):
            return status  # another machine's process: we cannot check it
        pid = status.get("pid")
        if pid is None:
            # Spawned but not yet recorded: only a failure if it never got going.
            if time.time() - float(status.get("updated_at", 0)) < 60:
                return status
        elif pid_alive(pid, status.get("pid_create_time")):
            return status
        return self._record_vanished(status)

    def _record_vanished(self, seen: Mapping[str, Any]) -> dict[str, Any]:
        try:
            with self.lock():
                status = self.read_status()
                if status.get("state") not in ACTIVE_STATES or status.get("pid") != seen.get("pid"):
                    return status  # someone else already settled it
                said = self._trainer_end(status)
                status.update(self._vanished_fields(status, said))
                write_json_atomically(self.status_path, status)
                if said is None:  # the trainer's own end, when it wrote one, stays the only one
                    from stylelora_tui.runs.events import EventWriter

                    with EventWriter(self.events_path) as writer:
                        writer.write("end", state="failed", error=status["error"], detected_by="watcher", durable=True)
                return status
        except OSError:
            # A full (or read-only) disk: say what happened without recording it.
            status = dict(seen)
            status.update(self._vanished_fields(status, self._trainer_end(status)))
            return status

    def _trainer_end(self, status: Mapping[str, Any]) -> dict[str, Any] | None:
        """The end event of the latest attempt, if its trainer wrote one before its status was lost."""
        started = float(status.get("started_at") or 0)
        for event in reversed(self.events()):
            if event.get("type") == "end":
                return event if float(event.get("time") or 0) >= started else None
            if event.get("type") in ("start", "resume"):
                return None
        return None

    @staticmethod
    def _vanished_fields(status: Mapping[str, Any], said: Mapping[str, Any] | None) -> dict[str, Any]:
        if said is not None:
            return {
                "state": said.get("state") or "failed", "error": said.get("error"), "error_kind": said.get("error_kind"),
                "error_detail": said.get("error_detail"), "ended_at": said.get("time") or timestamp(),
                "updated_at": timestamp(), "exit_code": None,
            }
        error = (
            f"the trainer (pid {status.get('pid')}) ended without saying why: killed (SIGKILL), "
            "out of memory (the kernel's OOM killer) or a reboot; see the end of trainer.log"
        )
        return {"state": "failed", "error": error, "ended_at": timestamp(), "updated_at": timestamp(), "exit_code": None}

    @property
    def state(self) -> str:
        return str(self.status().get("state", "unknown"))

    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

    # ----------------------------------------------------------------- history

    def events(self) -> list[dict[str, Any]]:
        return read_events(self.events_path)

    def tail(self) -> EventTail:
        return EventTail(self.events_path)

    def latest_checkpoint(self) -> Path | None:
        """The newest complete checkpoint (one whose trainer state was written)."""
        if not self.checkpoints_dir.is_dir():
            return None
        complete = []
        for folder in self.checkpoints_dir.glob("checkpoint-*"):
            suffix = folder.name.rsplit("-", 1)[-1]
            if suffix.isdigit() and (folder / "trainer_state.json").exists():
                complete.append((int(suffix), folder))
        return max(complete)[1] if complete else None

    def summary(self) -> dict[str, Any]:
        """State, step, last and best loss, style distance, duration: what `runs` lists."""
        status = self.status()
        events = self.events()
        history = training_history(events)
        styled = [e for e in sample_history(events) if e.get("style_distance") is not None]
        start = last_of(events, "start") or {}
        losses = [e["loss"] for e in history if e.get("loss") is not None]
        ended = status.get("ended_at")
        started = status.get("created_at")
        duration = None
        if started:
            duration = round((ended or time.time()) - float(started), 1)
        return {
            "name": self.name,
            "path": str(self.path),
            "state": status.get("state", "unknown"),
            "step": history[-1]["step"] if history else 0,
            "total_steps": start.get("total_steps"),
            "last_loss": losses[-1] if losses else None,
            "best_loss": min(losses) if losses else None,
            # The live samples' distance to the author, step by step (lower is closer), and the
            # author's own continuation of the same prompt on the same scale: the floor.
            "style_distance": styled[-1]["style_distance"] if styled else None,
            "reference_style_distance": styled[-1].get("reference_style_distance") if styled else None,
            "style_history": [[e["step"], e["style_distance"]] for e in styled],
            "model": start.get("model") or self._config_value("model", "name"),
            "backend": start.get("backend"),
            "device": start.get("device"),
            "duration_s": duration,
            "error": status.get("error"),
        }

    def _config_value(self, section: str, key: str) -> Any:
        from stylelora_tui import config as config_mod

        try:
            return self.config()[section][key]
        except (config_mod.ConfigError, KeyError):
            return None
