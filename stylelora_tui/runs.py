"""Runs (and, re-exported from ``workspace``, the workspace that holds them).

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
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

from stylelora_tui import config as config_mod
from stylelora_tui.events import EventTail, last_of, read_events, training_history
from stylelora_tui.workspace import Workspace  # noqa: F401  (runs.Workspace, as before)

ACTIVE_STATES = ("starting", "running", "stopping")
FINAL_STATES = ("completed", "stopped", "failed")


class RunError(RuntimeError):
    """A run action that cannot be done, with a message for the user."""


def _now() -> float:
    return round(time.time(), 3)


def _atomic_write_json(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)


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
        return config_mod.load(self.config_path, check_paths=False)

    # ----------------------------------------------------------------- status

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """An exclusive lock on this run (status updates, launches, stops)."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / ".lock", "a+") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

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
            status["updated_at"] = _now()
            _atomic_write_json(self.status_path, status)
            return status

    def status(self) -> dict[str, Any]:
        """The status, with a vanished trainer detected and recorded as failed.

        A trainer killed with SIGKILL (or a machine reboot) never writes its end
        event; its state would say "running" forever. We check its pid (on the
        same host) and, if it is gone, record the failure once, in both the
        status file and the event log, so every viewer agrees.
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
        with self.lock():
            status = self.read_status()
            if status.get("state") not in ACTIVE_STATES or status.get("pid") != seen.get("pid"):
                return status  # someone else already settled it
            error = (
                f"the trainer (pid {status.get('pid')}) ended without saying why: killed (SIGKILL), "
                "out of memory (the kernel's OOM killer) or a reboot; see the end of trainer.log"
            )
            status.update(state="failed", error=error, ended_at=_now(), updated_at=_now(), exit_code=None)
            _atomic_write_json(self.status_path, status)
            from stylelora_tui.events import EventWriter

            with EventWriter(self.events_path) as writer:
                writer.write("end", state="failed", error=error, detected_by="watcher", durable=True)
            return status

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
        """State, step, last and best loss, duration: what `runs` lists."""
        status = self.status()
        events = self.events()
        history = training_history(events)
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
            "model": start.get("model") or self._config_value("model", "name"),
            "backend": start.get("backend"),
            "device": start.get("device"),
            "duration_s": duration,
            "error": status.get("error"),
        }

    def _config_value(self, section: str, key: str) -> Any:
        try:
            return self.config()[section][key]
        except (config_mod.ConfigError, KeyError):
            return None


# --------------------------------------------------------------------------- launching


def new_run_name(config_path: Path | None, workspace: Workspace) -> str:
    stem = config_path.stem if config_path else "run"
    base = f"{time.strftime('%Y%m%d-%H%M%S')}-{stem}"
    name, counter = base, 1
    while (workspace.runs_dir / name).exists():
        counter += 1
        name = f"{base}-{counter}"
    return name


def create_run(
    workspace: Workspace, run_config: Mapping[str, Mapping[str, Any]], *, config_path: Path | None = None, name: str | None = None
) -> Run:
    """Make a run directory holding the resolved config (paths made absolute)."""
    workspace.ensure()
    resolved = config_mod.resolve(run_config, workspace.root)
    name = name or new_run_name(config_path, workspace)
    path = workspace.runs_dir / name
    try:
        path.mkdir(parents=False)
    except FileExistsError:
        raise RunError(f"run {path} already exists") from None
    run = Run(path)
    text = f"# Resolved config of run {name} (source: {config_path or 'the app'})\n" + config_mod.to_yaml(resolved)
    (path / "config.yaml").write_text(text, encoding="utf-8")
    run.update_status(state="created", created_at=_now(), host=socket.gethostname())
    return run


def trainer_command(run: Run, *, resume: bool) -> list[str]:
    command = [sys.executable, "-m", "stylelora_tui.trainer", str(run.path)]
    if resume:
        command.append("--resume")
    return command


# Started between us and the trainer, and ended at once: the trainer is then
# nobody's child (adopted by init), so it never lingers as our zombie and its
# life is independent of ours.
_SPAWNER = """
import subprocess, sys
log_path, cwd, *command = sys.argv[1:]
with open(log_path, "ab") as log:
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True, close_fds=True, cwd=cwd)
print(process.pid, flush=True)
"""


def launch(run: Run, *, resume: bool = False, env: Mapping[str, str] | None = None) -> int:
    """Start the trainer for ``run`` in its own session, output to trainer.log; return its pid.

    The new session means a hang-up of our terminal (a dropped SSH connection)
    never reaches it, and it survives the death of whoever launched it.
    """
    with run.lock():
        status = run.read_status()
        state = status.get("state")
        if state in ACTIVE_STATES and pid_alive(status.get("pid"), status.get("pid_create_time")):
            raise RunError(f"run {run.name} is already {state} (pid {status.get('pid')})")
        if resume:
            if state == "completed":
                raise RunError(f"run {run.name} already completed; fork it to train further")
            if run.latest_checkpoint() is None:
                raise RunError(
                    f"run {run.name} has no checkpoint to resume from in {run.checkpoints_dir}; start a new run instead"
                )
        elif state not in ("created", "new"):
            raise RunError(f"run {run.name} has already been started ({state}); use --resume")
        status.update(state="starting", pid=None, pid_create_time=None, error=None, exit_code=None, ended_at=None)
        status["updated_at"] = _now()
        _atomic_write_json(run.status_path, status)
        child_env = dict(os.environ if env is None else env)
        child_env.setdefault("PYTHONUNBUFFERED", "1")
        with open(run.log_path, "ab") as log:
            log.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} {'resume' if resume else 'start'} ====\n".encode())
        spawner = subprocess.run(
            [sys.executable, "-c", _SPAWNER, str(run.log_path), str(run.path), *trainer_command(run, resume=resume)],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, env=child_env, timeout=60,
        )
        if spawner.returncode != 0 or not spawner.stdout.strip().isdigit():
            status.update(state="failed", error=f"could not start the trainer: {spawner.stderr.strip()[-500:]}", ended_at=_now())
            _atomic_write_json(run.status_path, status)
            raise RunError(f"could not start the trainer for {run.name}: {spawner.stderr.strip()[-500:]}")
        pid = int(spawner.stdout.strip())
        status = run.read_status()
        if status.get("pid") is None:  # the trainer may already have recorded itself
            status.update(pid=pid, pid_create_time=process_start_time(pid), host=socket.gethostname())
            status["updated_at"] = _now()
            _atomic_write_json(run.status_path, status)
    return pid


def stop(run: Run) -> bool:
    """Ask a running trainer to checkpoint and stop. Safe to call twice, or from two apps."""
    with run.lock():
        status = run.read_status()
        if status.get("state") not in ACTIVE_STATES:
            return False
        pid = status.get("pid")
        if not pid_alive(pid, status.get("pid_create_time")):
            return False
        try:
            os.kill(int(pid), signal.SIGTERM)
        except ProcessLookupError:
            return False
        if status.get("state") != "stopping":
            status.update(state="stopping", updated_at=_now())
            _atomic_write_json(run.status_path, status)
    return True


def delete(run: Run) -> None:
    """Delete a run's directory; never a live one (checked under the run's lock)."""
    run.status()  # records a vanished trainer as failed first (takes the lock itself)
    with run.lock():
        status = run.read_status()
        if status.get("state") in ACTIVE_STATES and pid_alive(status.get("pid"), status.get("pid_create_time")):
            raise RunError(f"run {run.name} is {status.get('state')}: stop it first")
        shutil.rmtree(run.path)
