"""A sweep's folder (WORKSPACE/sweeps/NAME) and starting, stopping and resuming its runner.

The folder holds sweep.yaml (the resolved run config and its grid), the Optuna
study (optuna.journal), status.json (the runner's pid and state) and
runner.log. The runner is started like a trainer, in its own session through
``runs.control``'s spawner, so it outlives the CLI, the app and an SSH drop.
Optuna is imported only to read a sweep's trials, never at import time.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

from stylelora_tui import config as config_mod
from stylelora_tui.paths import BadName, check_name
from stylelora_tui.runs import control
from stylelora_tui.runs.run import Run, RunError, folder_lock, pid_alive, process_start_time, timestamp, write_json_atomically
from stylelora_tui.runs.workspace import Workspace
from stylelora_tui.sweeps.grid import SWEEP_KEY, apply, check_grid, point_problems, points
from stylelora_tui.training.distributed import visible_gpus  # light: no torch

ACTIVE = ("starting", "running", "stopping")
JOURNAL = "optuna.journal"


class Sweep:
    """One sweep folder."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def status_path(self) -> Path:
        return self.path / "status.json"

    @property
    def log_path(self) -> Path:
        return self.path / "runner.log"

    @property
    def journal_path(self) -> Path:
        return self.path / JOURNAL

    @property
    def workspace(self) -> Workspace:
        return Workspace(self.path.parent.parent)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """An exclusive lock on starting this sweep's runner: two resumes at once start one runner."""
        with folder_lock(self.path):
            yield

    def read_status(self) -> dict[str, Any]:
        import json

        try:
            return json.loads(self.status_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def update_status(self, **fields: Any) -> dict[str, Any]:
        status = self.read_status()
        status.update(fields, updated_at=timestamp())
        write_json_atomically(self.status_path, status)
        return status

    def runner_alive(self) -> bool:
        status = self.read_status()
        return pid_alive(status.get("pid"), status.get("pid_create_time"))

    def state(self) -> str:
        """The runner's state; a runner that vanished while active reads "failed"."""
        status = self.read_status()
        state = status.get("state", "created")
        if state in ACTIVE and not self.runner_alive():
            return "failed"
        return state

    def load(self) -> tuple[dict[str, dict[str, Any]], dict[str, list[Any]]]:
        """The run config and the grid, as stored at the start."""
        return load_sweep(self.path / "sweep.yaml")

    def trials(self) -> list[dict[str, Any]]:
        """Every trial with its params, run, state and held-out loss: best (lowest) loss first."""
        if not self.journal_path.exists():
            return []
        study = open_study(self)
        rows = []
        for trial in study.get_trials(deepcopy=False):
            run_name = trial.user_attrs.get("run")
            run_state = None
            if run_name and (self.workspace.runs_dir / run_name / "config.yaml").exists():
                run_state = Run(self.workspace.runs_dir / run_name).state
            rows.append({
                "number": trial.number + 1, "run": run_name, "params": dict(trial.params),
                "state": trial.state.name.lower(), "run_state": run_state, "eval_loss": trial.value,
            })
        return sorted(rows, key=lambda row: (row["eval_loss"] is None, row["eval_loss"] or 0.0, row["number"]))


def load_sweep(path: Path | str, *, workspace: Path | None = None, check_paths: bool = True) -> tuple[dict[str, dict[str, Any]], dict[str, list[Any]]]:
    """A sweep file's run config and grid; ConfigError listing every problem (config, grid and grid points)."""
    path = Path(path)
    config = config_mod.load(path, workspace=workspace, check_paths=check_paths)  # checks the grid's keys and values too
    raw, lines = config_mod.parse_yaml(path.read_text(encoding="utf-8-sig"), source=str(path))
    if not isinstance(raw, dict) or SWEEP_KEY not in raw:
        raise config_mod.ConfigError([config_mod.Problem(SWEEP_KEY, "no sweep: mapping in this config; add e.g. "
                                                         "`sweep: {lora.r: [8, 16]}` to sweep over values", None, str(path))])
    grid, problems = check_grid(raw[SWEEP_KEY], lines=lines, source=str(path))
    problems += point_problems(config, grid, source=str(path), workspace=workspace, check_paths=check_paths)
    if problems:
        raise config_mod.ConfigError(problems)
    return config, grid


def sweeps_dir(workspace: Workspace) -> Path:
    return workspace.root / "sweeps"


def find_sweep(workspace: Workspace, name: str | None) -> Sweep:
    """A sweep by name; with no name, the only (or newest) one."""
    folder = sweeps_dir(workspace)
    if name:
        sweep = Sweep(folder / name)
        if not (sweep.path / "sweep.yaml").exists():
            known = ", ".join(sorted(s.name for s in list_sweeps(workspace)))
            raise RunError(f"no sweep {name!r} in {folder}" + (f"; sweeps: {known}" if known else ""))
        return sweep
    found = list_sweeps(workspace)
    if not found:
        raise RunError(f"no sweeps in {folder}; start one with `stylelora-tui sweep CONFIG`")
    return found[-1]


def list_sweeps(workspace: Workspace) -> list[Sweep]:
    """Every sweep of the workspace, oldest first (by its sweep.yaml's time)."""
    folder = sweeps_dir(workspace)
    found = sorted(folder.glob("*/sweep.yaml"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
    return [Sweep(path.parent) for path in found]


def open_study(sweep: Sweep, grid: Mapping[str, list[Any]] | None = None) -> Any:
    """The sweep's Optuna study (a journal file in its folder), created on first use."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    grid = grid if grid is not None else sweep.load()[1]
    storage = JournalStorage(JournalFileBackend(str(sweep.journal_path)))
    return optuna.create_study(study_name=sweep.name, storage=storage, direction="minimize",
                               sampler=optuna.samplers.GridSampler(dict(grid), seed=0), load_if_exists=True)


def gpu_ids(env: Mapping[str, str] | None = None) -> list[str]:
    """The GPUs this runner may hand out, as CUDA_VISIBLE_DEVICES entries (no torch: the env, else the driver)."""
    env = os.environ if env is None else env
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip() and d.strip() != "-1"]
    return [str(index) for index in range(visible_gpus())]


def slot_env(slot: int, gpus: list[str], base: Mapping[str, str] | None = None) -> dict[str, str] | None:
    """The environment of a run in ``slot``: pinned to GPU ``gpus[slot]``; None (inherit) without GPUs."""
    if not gpus:
        return None
    env = dict(os.environ if base is None else base)
    env["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
    return env


def check_parallel(parallel: int, env: Mapping[str, str] | None = None) -> None:
    """RunError unless ``parallel`` trials at once fit: at least 1, and with GPUs, one GPU each."""
    if parallel < 1:
        raise RunError(f"--parallel {parallel}: give how many trials train at once (1 or more)")
    gpus = gpu_ids(env)
    if gpus and parallel > len(gpus):
        raise RunError(f"--parallel {parallel}: {len(gpus)} GPU(s) visible ({','.join(gpus)}); each trial at once "
                       f"gets a GPU of its own, so at most --parallel {len(gpus)}")


def create_sweep(workspace: Workspace, config_path: Path, name: str | None = None, *, parallel: int = 1,
                 source: str | None = None) -> Sweep:
    """Check the sweep file and make its folder with sweep.yaml (paths made absolute); ``parallel``: trials at once.

    ``source`` says where the config came from in sweep.yaml's header (default: the file's path).
    """
    import yaml

    check_parallel(parallel)
    config, grid = load_sweep(config_path, workspace=workspace.root)
    name = name or Path(config_path).stem
    try:
        check_name(name, "sweep name")
    except BadName as exc:
        raise RunError(str(exc)) from None
    control.check_model(config, workspace.root)
    workspace.ensure()
    sweep = Sweep(sweeps_dir(workspace) / name)
    try:
        sweep.path.mkdir(parents=True)
    except FileExistsError:
        raise RunError(f"sweep {name} already exists in {sweep.path.parent}: `stylelora-tui sweep resume {name}` "
                       "continues it, or give another --name") from None
    resolved = config_mod.resolve(config, workspace.root)
    grid = _resolve_paths(config, grid, workspace.root)
    text = (f"# Sweep {name} (source: {source or config_path}); {len(points(grid))} runs\n" + config_mod.to_yaml(resolved)
            + yaml.safe_dump({SWEEP_KEY: grid}, default_flow_style=None, sort_keys=True))
    (sweep.path / "sweep.yaml").write_text(text, encoding="utf-8")
    sweep.update_status(state="created", created_at=timestamp(), runs=len(points(grid)), parallel=parallel)
    return sweep


def start_from_config(workspace: Workspace, config: Mapping[str, Mapping[str, Any]], grid: Mapping[str, list[Any]],
                      name: str, *, parallel: int = 1) -> Sweep:
    """Create a sweep of ``config`` (a checked run config, as the app's form gives it) over ``grid`` and start its runner.

    What the app's Start sweep does: the same checks and folder as ``stylelora-tui sweep CONFIG --detach``.
    """
    import tempfile

    import yaml

    with tempfile.TemporaryDirectory(prefix="stylelora-sweep-") as folder:
        path = Path(folder) / f"{name}.yaml"
        path.write_text(config_mod.to_yaml(config) + yaml.safe_dump({SWEEP_KEY: dict(grid)}, default_flow_style=None,
                                                                   sort_keys=True), encoding="utf-8")
        try:
            sweep = create_sweep(workspace, path, name, parallel=parallel, source="the app's Config form")
        except config_mod.ConfigError as exc:  # name the form, not the passing file
            raise config_mod.ConfigError([config_mod.Problem(p.key, p.message, None, "the form's config")
                                          for p in exc.problems]) from None
    launch(sweep)
    return sweep


_PATH_KEYS = ("model.name", "data.corpus", "train.accelerate_config")


def _resolve_paths(config: Mapping[str, Mapping[str, Any]], grid: Mapping[str, list[Any]], root: Path) -> dict[str, list[Any]]:
    """Swept paths made absolute like the run config's own, so each run reads them from anywhere."""
    resolved = dict(grid)
    for key in set(_PATH_KEYS) & set(grid):
        section, _, name = key.partition(".")
        resolved[key] = [config_mod.resolve(apply(config, {key: value}), root)[section][name] for value in grid[key]]
    return resolved


def launch(sweep: Sweep, env: Mapping[str, str] | None = None, *, parallel: int | None = None) -> int:
    """Start the sweep's runner in its own session (runner.log); return its pid.

    ``parallel`` changes how many trials train at once (a resume keeps the last value without it).
    """
    with sweep.lock():
        return _launch(sweep, env, parallel)


def _launch(sweep: Sweep, env: Mapping[str, str] | None, parallel: int | None = None) -> int:
    if parallel is not None:
        check_parallel(parallel, env)
    if sweep.runner_alive():
        raise RunError(f"sweep {sweep.name} is already running (runner pid {sweep.read_status().get('pid')})")
    if sweep.read_status().get("state") == "completed":
        raise RunError(f"sweep {sweep.name} already completed")
    sweep.update_status(state="starting", pid=None, pid_create_time=None, error=None, ended_at=None,
                        **({"parallel": parallel} if parallel is not None else {}))
    child_env = dict(os.environ if env is None else env)
    child_env.setdefault("PYTHONUNBUFFERED", "1")
    command = [sys.executable, "-m", "stylelora_tui.sweeps.runner", str(sweep.path)]
    try:  # as a trainer is started: the runner ends up nobody's child, in a session of its own
        pid = control.spawn_detached(command, sweep.log_path, sweep.path, child_env)
    except RunError as exc:
        sweep.update_status(state="failed", error=f"could not start the sweep runner: {exc}")
        raise RunError(f"could not start the runner of sweep {sweep.name}: {exc}") from None
    if sweep.read_status().get("pid") is None:
        sweep.update_status(pid=pid, pid_create_time=process_start_time(pid))
    return pid


def stop(sweep: Sweep) -> bool:
    """Ask the runner to stop its current run (which checkpoints) and end; False if it is not running."""
    status = sweep.read_status()
    if not sweep.runner_alive():
        return False
    try:
        os.kill(int(status["pid"]), signal.SIGTERM)
    except ProcessLookupError:
        return False
    if status.get("state") != "stopping":
        sweep.update_status(state="stopping")
    return True


def wait(sweep: Sweep, timeout: float | None = None) -> str:
    """Wait until the runner has ended; its final state."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while sweep.runner_alive():
        if deadline is not None and time.monotonic() > deadline:
            break
        time.sleep(0.5)
    return sweep.state()
