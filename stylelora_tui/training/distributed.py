"""Several training processes (one per GPU) through Hugging Face accelerate, DDP.

``train.gpus`` > 1 (or ``stylelora-tui train --gpus N``) makes the trainer a
supervisor: it owns the run's status and its one ``end`` event, and runs
``accelerate launch --multi_gpu --num_processes N -m stylelora_tui.training.trainer``
(``--config_file`` instead where a multi-machine accelerate config is given).
Each rank is the ordinary trainer in worker mode: the Trainer runs DDP (NCCL on
GPUs, gloo on a CPU), only rank 0 writes events, samples, checkpoints and the
adapter, and every rank leaves a report (``RUN/ranks/rank-R.json``) saying how
it ended, so a rank's failure reaches the status naming the rank.

Stop: the supervisor passes SIGTERM to every rank; the ranks agree on the step
to stop at (``any_rank``), checkpoint there together and end "stopped". Resume
restarts them all from that checkpoint.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from stylelora_tui.runs.run import Run, write_json_atomically

#: Set by the supervisor in every rank's environment: run as one rank of a launch, not as a supervisor.
WORKER_ENV = "STYLELORA_RANK_WORKER"
#: After the first rank has ended, how long the others get before the launch is ended by force (a rank
#: waiting forever on a peer that is gone must not keep the run "running").
GRACE_SECONDS = 180.0


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_worker() -> bool:
    return os.environ.get(WORKER_ENV) == "1"


def visible_gpus() -> int:
    """CUDA devices this process may use, without importing torch (CUDA_VISIBLE_DEVICES, else the driver's list)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    gpus = Path("/proc/driver/nvidia/gpus")
    return len(list(gpus.iterdir())) if gpus.is_dir() else 0


def process_count(train: dict[str, Any]) -> int:
    """How many training processes ``train.gpus`` asks for: 0 is every visible GPU (one process on a CPU)."""
    wanted = int(train.get("gpus") or 0)
    return wanted if wanted > 0 else max(1, visible_gpus())


def unsloth_note(processes: int) -> str | None:
    """Why a launch of several processes uses the PEFT backend (None for one process)."""
    if processes <= 1:
        return None
    return (f"{processes} processes: Unsloth's open-source kernels train in one process only, so the plain "
            "transformers + PEFT backend runs the DDP launch")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def launch_command(run_dir: Path, processes: int, *, resume: bool, config_file: str | None = None,
                   port: int | None = None) -> list[str]:
    """The ``accelerate launch`` command for the ranks (accelerate's own CLI, run by this Python)."""
    command = [sys.executable, "-m", "accelerate.commands.launch"]
    if config_file:  # several machines: the user's accelerate config says how many and where
        command += ["--config_file", str(config_file)]
    else:
        command += ["--multi_gpu", "--num_processes", str(processes), "--num_machines", "1",
                    "--mixed_precision", "no", "--dynamo_backend", "no",  # the trainer sets its own precision
                    "--main_process_port", str(port or free_port())]
    command += ["-m", "stylelora_tui.training.trainer", str(run_dir)]
    return command + (["--resume"] if resume else [])


# --------------------------------------------------------------------------- rank reports


def reports_dir(run: Run) -> Path:
    return run.path / "ranks"


def write_report(run: Run, state: str, error: str | None = None, kind: str | None = None,
                 detail: str | None = None) -> None:
    """How this rank ended (``completed``, ``stopped`` or ``failed``), for the supervisor."""
    folder = reports_dir(run)
    folder.mkdir(exist_ok=True)
    write_json_atomically(folder / f"rank-{rank()}.json", {"rank": rank(), "state": state, "error": error,
                                                            "error_kind": kind, "error_detail": detail,
                                                            "time": time.time(), "pid": os.getpid()})


def read_reports(run: Run) -> dict[int, dict[str, Any]]:
    reports = {}
    for path in sorted(reports_dir(run).glob("rank-*.json")):
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
            reports[int(report["rank"])] = report
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a report cut short by a kill: that rank counts as silent
    return reports


def outcome(reports: dict[int, dict[str, Any]], processes: int, exit_code: int | None) -> tuple[str, str | None, str | None, str | None]:
    """(state, error, kind, detail) of a launch from its ranks' reports and the launcher's exit code.

    The first rank to fail (by time) is the cause; the others often fail only
    because it went. A rank with no report was killed or died too hard to say.
    """
    failed = sorted((r for r in reports.values() if r.get("state") == "failed"), key=lambda r: r.get("time", 0))
    if failed:
        first = failed[0]
        return "failed", f"rank {first['rank']} of {processes}: {first.get('error')}", first.get("error_kind"), first.get("error_detail")
    silent = [r for r in range(processes) if r not in reports]
    if silent:
        return ("failed", f"rank {silent[0]} of {processes} ended without a report (launcher exit code {exit_code}); "
                "see trainer.log", "crash", None)
    states = {r.get("state") for r in reports.values()}
    return ("stopped" if "stopped" in states else "completed"), None, None, None


# --------------------------------------------------------------------------- in the ranks


def any_rank(flags: list[bool], device: Any = None) -> list[bool]:
    """Each flag true on any rank (one tiny all-reduce), so every rank stops at the same step; as is in one process."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return list(flags)
    tensor = torch.tensor([int(bool(f)) for f in flags], dtype=torch.int32, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return [bool(v) for v in tensor.tolist()]


def allow_cpu_rank_locations() -> None:
    """Let ``torch.load`` read storages tagged ``cpu:N``.

    On a CPU, accelerate gives each rank the device ``cpu:N``; the Trainer
    resumes the optimizer with ``map_location=args.device``, which torch cannot
    restore ("don't know how to restore data location ... cpu:0"). A CPU
    location is the CPU whatever its index, so the storage stays where it is.
    """
    import torch

    torch.serialization.register_package(
        30, lambda storage: None,
        lambda storage, location: storage if str(location).startswith("cpu:") else None,
    )


class SilentWriter:
    """The event log of a rank other than 0: rank 0 alone writes events."""

    def write(self, *args: Any, **fields: Any) -> None:
        pass

    def close(self) -> None:
        pass


class RankRun(Run):
    """A run seen by a rank other than 0: it reads the folder but never writes the status."""

    def update_status(self, **fields: Any) -> dict[str, Any]:  # type: ignore[override]
        return {}


# --------------------------------------------------------------------------- the supervisor


def _workers(launcher: subprocess.Popen) -> list[Any]:
    import psutil

    try:
        return psutil.Process(launcher.pid).children(recursive=True)
    except psutil.Error:
        return []


def supervise(run: Run, processes: int, *, resume: bool, stop: Any, config_file: str | None = None) -> tuple[str, str | None, str | None, str | None]:
    """Run the ranks to their end; (state, error, kind, detail) from their reports."""
    import shutil

    shutil.rmtree(reports_dir(run), ignore_errors=True)  # this attempt's reports only
    env = {**os.environ, WORKER_ENV: "1"}
    command = launch_command(run.path, processes, resume=resume, config_file=config_file)
    print(f"[stylelora] launching {processes} processes: {' '.join(command)}", flush=True)
    launcher = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL)
    forwarded, first_end = False, None
    while launcher.poll() is None:
        if stop.requested and not forwarded:
            forwarded = True
            for worker in _workers(launcher):  # the ranks themselves: they agree on a step and checkpoint
                try:
                    worker.send_signal(signal.SIGTERM)
                except Exception:  # noqa: BLE001 - gone already
                    pass
        if first_end is None and read_reports(run):
            first_end = time.monotonic()
        if first_end is not None and time.monotonic() - first_end > GRACE_SECONDS:
            print(f"[stylelora] a rank ended {GRACE_SECONDS:.0f} s ago and the others have not: ending the launch", flush=True)
            for process in [*_workers(launcher)]:
                try:
                    process.kill()
                except Exception:  # noqa: BLE001
                    pass
            launcher.kill()
        time.sleep(0.5)
    return outcome(read_reports(run), processes, launcher.returncode)
