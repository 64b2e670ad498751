"""Several training processes through accelerate (DDP, gloo on this CPU), and the pieces that make them one run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import cli_env, stylelora_command, write_tiny_config
from stylelora_tui import config as config_mod
from stylelora_tui.runs.events import read_events, training_history
from stylelora_tui.runs.run import Run
from stylelora_tui.training import distributed
from stylelora_tui.training.backends import choose_backend
from stylelora_tui.training.plan import steps_for


def test_the_launch_is_accelerates_own_and_a_config_file_replaces_the_one_machine_flags(tmp_path) -> None:
    command = distributed.launch_command(tmp_path, 2, resume=True, port=29555)
    assert command[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert command[command.index("--num_processes") + 1] == "2" and "--multi_gpu" in command
    assert command[command.index("--main_process_port") + 1] == "29555"
    assert command[-4:] == ["-m", "stylelora_tui.training.trainer", str(tmp_path), "--resume"]
    several = distributed.launch_command(tmp_path, 16, resume=False, config_file="/etc/two-boxes.yaml")
    assert several[3:5] == ["--config_file", "/etc/two-boxes.yaml"] and "--num_processes" not in several
    assert several[-1] == str(tmp_path)


def test_gpus_zero_means_every_visible_gpu_and_one_process_without(monkeypatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,3,5")
    assert distributed.process_count({"gpus": 0}) == 3 and distributed.process_count({"gpus": 2}) == 2
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert distributed.process_count({"gpus": 0}) == 1 and distributed.process_count({}) == 1


def test_several_processes_use_the_peft_backend_and_say_why_before_launch() -> None:
    assert choose_backend("unsloth", 1) == ("unsloth", None)
    backend, note = choose_backend("unsloth", 4)
    assert backend == "peft" and note.startswith("4 processes: Unsloth") and "PEFT" in note
    assert choose_backend("peft", 4) == ("peft", None)
    # Each rank takes its share of an epoch: 24 records, 2 ranks, 4 per batch -> 3 steps an epoch.
    assert steps_for(24, per_device_train_batch_size=4, gradient_accumulation_steps=1, num_train_epochs=1, processes=2) == 3
    assert steps_for(24, per_device_train_batch_size=4, gradient_accumulation_steps=1, num_train_epochs=1) == 6


def report(rank: int, state: str, error: str | None = None, at: float = 0.0) -> dict:
    return {"rank": rank, "state": state, "error": error, "error_kind": "oom" if error else None, "time": at}


def test_the_outcome_names_the_first_rank_that_failed_or_the_one_that_said_nothing() -> None:
    done = {0: report(0, "completed"), 1: report(1, "completed")}
    assert distributed.outcome(done, 2, 0) == ("completed", None, None, None)
    assert distributed.outcome({0: report(0, "stopped"), 1: report(1, "stopped")}, 2, 0)[0] == "stopped"
    # Rank 0 failed only because rank 1 went first: rank 1 is named.
    failed = {0: report(0, "failed", "Connection closed by peer", at=9.0), 1: report(1, "failed", "CUDA out of memory", at=5.0)}
    state, error, kind, _ = distributed.outcome(failed, 2, 1)
    assert state == "failed" and error == "rank 1 of 2: CUDA out of memory" and kind == "oom"
    state, error, kind, _ = distributed.outcome({0: report(0, "completed")}, 2, -9)
    assert state == "failed" and error.startswith("rank 1 of 2 ended without a report (launcher exit code -9)")


def test_a_missing_accelerate_config_is_named_in_config_check(tmp_path) -> None:
    cfg = config_mod.defaults()
    cfg["train"]["accelerate_config"] = "two-boxes.yaml"
    _, problems = config_mod.validate(cfg, workspace=tmp_path, check_paths=True)
    assert any(p.key == "train.accelerate_config" and str(tmp_path / "two-boxes.yaml") in str(p) for p in problems)


def test_gpus_go_with_a_new_run_not_with_resume(workspace, tiny_model) -> None:
    result = subprocess.run(stylelora_command("train", "-w", str(workspace), "--resume", "x", "--gpus", "2"),
                            capture_output=True, text=True, timeout=60, env=cli_env())
    assert result.returncode == 2 and "resumes with the processes it started with" in result.stderr


def dashboard_text(run: Run) -> str:
    from stylelora_tui.runs.follower import RunFollower
    from stylelora_tui.screens.train_text import stats_text

    follower = RunFollower.of_run(run)
    follower.poll_once()
    return stats_text(follower.view(run.name))


def test_the_dashboard_shows_the_world_size_and_each_gpu(tmp_path) -> None:
    from stylelora_tui.runs.events import EventWriter

    run = Run(tmp_path / "runs" / "gpu-run")
    run.path.mkdir(parents=True)
    gpus = [{"index": 0, "utilization": 97, "memory_used": 30 * 2**30, "memory_total": 80 * 2**30},
            {"index": 1, "utilization": "n/a"},  # a figure NVML could not give: left out, not fatal
            {"index": 2, "utilization": 88, "memory_used": 29 * 2**30, "memory_total": 80 * 2**30}]
    with EventWriter(run.events_path) as writer:
        writer.write("start", step=0, total_steps=10, device="cuda (NVIDIA H100)", backend="peft", world_size=3)
        writer.write("log", step=1, loss=2.0, gpus=gpus)
    text = dashboard_text(run)
    assert "cuda (NVIDIA H100) x3 / peft" in text and text.splitlines()[-1] == "GPU 0: 97% 30.0 GB  2: 88% 29.0 GB"
    assert all(len(line) <= 78 for line in text.splitlines())  # fits the 80-column pane


# --------------------------------------------------------------------------- the real thing: 2 ranks, gloo


def train_cli(workspace: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(stylelora_command("train", "-w", str(workspace), *args), capture_output=True, text=True,
                          timeout=420, env=env or cli_env(), stdin=subprocess.DEVNULL)


def wait_for(predicate, timeout: float = 180) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


@pytest.mark.slow
def test_two_ranks_train_stop_together_resume_and_leave_one_run(workspace, tiny_model) -> None:
    config = write_tiny_config(workspace, tiny_model, backend="auto", max_steps=40, save_steps=1000, gpus=2)
    started = train_cli(workspace, str(config), "--detach")
    assert started.returncode == 0, started.stderr
    run = Run(Path(started.stdout.strip()))
    wait_for(lambda: len(training_history(read_events(run.events_path))) >= 3 or not run.is_active())
    assert run.is_active(), run.log_path.read_text()[-3000:]

    stop = subprocess.run(stylelora_command("stop", "-w", str(workspace), run.name, "--wait"),
                          capture_output=True, text=True, timeout=180, env=cli_env())
    assert stop.returncode == 0, stop.stderr
    status = run.status()
    assert status["state"] == "stopped", (status, run.log_path.read_text()[-3000:])
    steps = [e["step"] for e in training_history(read_events(run.events_path))]
    assert steps == list(range(1, steps[-1] + 1)) and steps[-1] < 40  # each step once: rank 0 alone writes
    assert run.latest_checkpoint().name == f"checkpoint-{steps[-1]}"  # both ranks stopped at the same step
    assert {json.loads(p.read_text())["state"] for p in (run.path / "ranks").glob("rank-*.json")} == {"stopped"}

    resumed = train_cli(workspace, "--resume", run.name)
    assert resumed.returncode == 0, resumed.stderr + run.log_path.read_text()[-3000:]
    events = read_events(run.events_path)
    assert [e["step"] for e in training_history(events)] == list(range(1, 41))
    starts = [e for e in events if e["type"] == "start"]
    assert [s["world_size"] for s in starts] == [2, 2] and starts[1]["step"] == steps[-1]
    assert starts[0]["backend"] == "peft" and "Unsloth" in starts[0]["backend_note"]
    assert [e["state"] for e in events if e["type"] == "end"] == ["stopped", "completed"]
    assert run.status()["state"] == "completed"
    assert " x2 / peft" in dashboard_text(run) and "GPU" not in dashboard_text(run)  # no GPU here: no GPU line

    # The adapter has the layout of a one-process run (files, tensor names and shapes), and plain PEFT loads it.
    single = write_tiny_config(workspace, tiny_model, name="one", backend="peft", max_steps=2, save_steps=1000, gpus=1)
    alone = train_cli(workspace, str(single), "--name", "one-process")
    assert alone.returncode == 0, alone.stderr
    one = Run(workspace / "runs" / "one-process")
    assert sorted(p.name for p in run.adapter_dir.iterdir()) == sorted(p.name for p in one.adapter_dir.iterdir())
    assert tensor_shapes(run) == tensor_shapes(one)
    from peft import PeftConfig

    assert PeftConfig.from_pretrained(run.adapter_dir).r == 8


def tensor_shapes(run: Run) -> dict[str, list[int]]:
    from safetensors import safe_open

    with safe_open(run.adapter_dir / "adapter_model.safetensors", framework="pt") as weights:
        return {key: list(weights.get_slice(key).get_shape()) for key in weights.keys()}


@pytest.mark.slow
def test_a_rank_that_fails_is_named_in_the_status(workspace, tiny_model) -> None:
    config = write_tiny_config(workspace, tiny_model, backend="peft", max_steps=30, save_steps=1000, gpus=2)
    env = {**cli_env(), "STYLELORA_FAULT": "oom_at_step:3@rank:1"}
    result = train_cli(workspace, str(config), env=env)
    run = next((workspace / "runs").iterdir())
    status = Run(run).status()
    assert result.returncode != 0 and status["state"] == "failed", (status, Run(run).log_path.read_text()[-3000:])
    assert status["error"].startswith("rank 1 of 2: ") and "out of memory" in status["error"]
    assert status["error_kind"] == "oom"
    ends = [e for e in read_events(Run(run).events_path) if e["type"] == "end"]
    assert len(ends) == 1 and ends[0]["error"] == status["error"]
    assert "memory_bytes" not in ends[0]  # the supervisor's own memory would pass for the ranks'
