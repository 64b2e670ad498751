"""Starting, stopping, resuming and deleting runs.

The trainer is started through a short-lived spawner so that it runs in its
own session, nobody's child: a dropped SSH connection or the death of the app
never reaches it. Every action takes the run's lock, so two apps (or an app
and the CLI) acting on one run at once start at most one trainer.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Mapping

from stylelora_tui import config as config_mod
from stylelora_tui.paths import BadName, check_name
from stylelora_tui.runs.run import (
    ACTIVE_STATES,
    Run,
    RunError,
    write_json_atomically,
    timestamp,
    pid_alive,
    process_start_time,
)
from stylelora_tui.runs.workspace import Workspace

def new_run_name(config_path: Path | None, workspace: Workspace) -> str:
    stem = config_path.stem if config_path else "run"
    base = f"{time.strftime('%Y%m%d-%H%M%S')}-{stem}"
    name, counter = base, 1
    while (workspace.runs_dir / name).exists():
        counter += 1
        name = f"{base}-{counter}"
    return name


def check_model(run_config: Mapping[str, Mapping[str, Any]], workspace_root: Path | None) -> Any:
    """Where the run's model will load from (``training.models.ModelSource``); RunError if nowhere.

    Seconds at most and no torch: a local folder, the local Hugging Face cache,
    or a reachable Hub. Done before a run folder exists and before a launch,
    so an unreachable model fails at once instead of inside the trainer.
    """
    from stylelora_tui.training.models import ModelUnavailable, check_model_available

    try:
        return check_model_available(str(run_config["model"]["name"]), workspace=workspace_root)
    except ModelUnavailable as exc:
        raise RunError(str(exc)) from None


def _check_run_name(name: str) -> None:
    try:
        check_name(name, "run name")
    except BadName as exc:
        raise RunError(str(exc)) from None


def _trainer_env(source: Any, env: Mapping[str, str] | None) -> dict[str, str]:
    child_env = dict(os.environ if env is None else env)
    if source.needs_offline_mode:
        # Cached, Hub out of reach: online, transformers would wait about a minute for the network.
        child_env["HF_HUB_OFFLINE"] = "1"
    return child_env


def start_run(
    workspace: Workspace, run_config: Mapping[str, Mapping[str, Any]], *, config_path: Path | None = None,
    name: str | None = None, env: Mapping[str, str] | None = None,
) -> tuple[Run, int]:
    """Check the name and the model, make the run folder, start its trainer: (run, trainer pid).

    What ``stylelora-tui train`` and the app's Launch do. A name or a model
    that cannot be used raises RunError within seconds, before any folder exists.
    """
    if name is not None:
        _check_run_name(name)
    source = check_model(run_config, workspace.root)
    run = create_run(workspace, run_config, config_path=config_path, name=name)
    return run, launch(run, env=_trainer_env(source, env))


def resume_run(run: Run, *, env: Mapping[str, str] | None = None) -> int:
    """``launch(run, resume=True)`` after checking the run's model can still be had."""
    try:
        run_config = run.config()
    except config_mod.ConfigError as exc:
        raise RunError(f"run {run.name} has an unusable config.yaml: {exc}") from None
    source = check_model(run_config, None)  # a run's config holds absolute paths
    return launch(run, resume=True, env=_trainer_env(source, env))


def create_run(
    workspace: Workspace, run_config: Mapping[str, Mapping[str, Any]], *, config_path: Path | None = None, name: str | None = None
) -> Run:
    """Make a run directory holding the resolved config (paths made absolute).

    A refused name leaves no folder. It does not check the model: ``start_run`` does.
    """
    if name is not None:
        _check_run_name(name)
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
    run.update_status(state="created", created_at=timestamp(), host=socket.gethostname())
    return run


def trainer_command(run: Run, *, resume: bool) -> list[str]:
    command = [sys.executable, "-m", "stylelora_tui.training.trainer", str(run.path)]
    if resume:
        command.append("--resume")
    return command


# Started between us and the process, and ended at once: the process is then
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


def spawn_detached(command: list[str], log_path: Path, cwd: Path, env: Mapping[str, str]) -> int:
    """Start ``command`` in a session of its own, nobody's child, output appended to ``log_path``; its pid.

    A hang-up of our terminal (a dropped SSH connection) never reaches it, and
    it outlives whoever started it. Raises ``RunError`` with the spawner's
    message when it could not start.
    """
    spawner = subprocess.run([sys.executable, "-c", _SPAWNER, str(log_path), str(cwd), *command],
                             stdin=subprocess.DEVNULL, capture_output=True, text=True, env=dict(env), timeout=60)
    if spawner.returncode != 0 or not spawner.stdout.strip().isdigit():
        raise RunError(spawner.stderr.strip()[-500:] or f"the spawner exited with {spawner.returncode}")
    return int(spawner.stdout.strip())


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
        status["updated_at"] = timestamp()
        write_json_atomically(run.status_path, status)
        child_env = dict(os.environ if env is None else env)
        child_env.setdefault("PYTHONUNBUFFERED", "1")
        with open(run.log_path, "ab") as log:
            log.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} {'resume' if resume else 'start'} ====\n".encode())
        try:
            pid = spawn_detached(trainer_command(run, resume=resume), run.log_path, run.path, child_env)
        except RunError as exc:
            status.update(state="failed", error=f"could not start the trainer: {exc}", ended_at=timestamp())
            write_json_atomically(run.status_path, status)
            raise RunError(f"could not start the trainer for {run.name}: {exc}") from None
        status = run.read_status()
        if status.get("pid") is None:  # the trainer may already have recorded itself
            status.update(pid=pid, pid_create_time=process_start_time(pid), host=socket.gethostname())
            status["updated_at"] = timestamp()
            write_json_atomically(run.status_path, status)
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
            status.update(state="stopping", updated_at=timestamp())
            write_json_atomically(run.status_path, status)
    return True


def delete(run: Run) -> None:
    """Delete a run's directory; never a live one (checked under the run's lock)."""
    run.status()  # records a vanished trainer as failed first (takes the lock itself)
    with run.lock():
        status = run.read_status()
        if status.get("state") in ACTIVE_STATES and pid_alive(status.get("pid"), status.get("pid_create_time")):
            raise RunError(f"run {run.name} is {status.get('state')}: stop it first")
        shutil.rmtree(run.path)
