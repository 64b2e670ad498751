"""The real training path: a tiny Llama trained through the trainer subprocess.

Unsloth, TRL, PEFT and bitsandbytes all run on this CPU, so nothing here is
mocked: each test starts ``stylelora-tui train`` (or the trainer directly)
and checks what lands in the run directory.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import cli_env, stylelora_command, write_tiny_config
from stylelora_tui.runs.events import read_events, training_history
from stylelora_tui.runs.run import Run
from stylelora_tui.runs.workspace import Workspace

pytestmark = pytest.mark.slow
BACKENDS = ["unsloth", "peft"]


def write_config(workspace: Path, model: Path, *, backend: str = "unsloth", name: str = "tiny", **train: Any) -> Path:
    return write_tiny_config(workspace, model, backend=backend, name=name, **train)


def train_cli(workspace: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        stylelora_command("train", "-w", str(workspace), *args),
        capture_output=True, text=True, timeout=timeout, env=cli_env(), stdin=subprocess.DEVNULL,
    )


def only_run(workspace: Path) -> Run:
    runs = Workspace(workspace).runs()
    assert len(runs) == 1, runs
    return runs[0]


def wait_for(predicate, timeout: float = 120, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError("timed out waiting")


def logged_steps(run: Run) -> list[int]:
    return [e["step"] for e in read_events(run.events_path) if e["type"] == "log"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_training_writes_ordered_events_falling_loss_and_a_plain_peft_adapter(workspace, tiny_model, backend):
    config_path = write_config(workspace, tiny_model, backend=backend)
    result = train_cli(workspace, str(config_path))
    assert result.returncode == 0, result.stderr + only_run(workspace).log_path.read_text()
    run = only_run(workspace)

    events = read_events(run.events_path)
    kinds = [e["type"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end"
    assert events[-1]["state"] == "completed" and events[-1]["error"] is None
    start = events[0]
    assert start["backend"] == backend and start["total_steps"] == 12
    assert 0 < start["trainable_params"] < start["total_params"]
    assert math.isclose(start["trainable_ratio"], start["trainable_params"] / start["total_params"])

    logs = [e for e in events if e["type"] == "log"]
    assert [e["step"] for e in logs] == list(range(1, 13))
    assert all(e["time"] >= prev["time"] for prev, e in zip(events, events[1:]))
    losses = [e["loss"] for e in logs]
    assert all(math.isfinite(loss) for loss in losses)
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.05, losses
    assert all(e["tokens_per_s"] and e["tokens_per_s"] > 0 for e in logs)
    assert [e["step"] for e in events if e["type"] == "checkpoint"] == [6, 12]
    assert any(e["type"] == "eval" and math.isfinite(e["eval_loss"]) for e in events)

    samples = [e for e in events if e["type"] == "sample"]
    assert [e["step"] for e in samples] == [6, 12]
    assert all(e["reference"] and e["prompt"] and isinstance(e["text"], str) for e in samples)
    # A tiny random model may end a continuation at once (an empty sample, seen once in CI);
    # a sampler that never produced text would fail here.
    assert any(e["text"] for e in samples), samples
    # Each sample is scored against the other held-out passages, beside the author's own continuation.
    assert all(e["style_distance"] > 0 for e in samples if e["text"])
    assert all(e["reference_style_distance"] >= 0 and e["seed"] == 3407 for e in samples)
    summary = run.summary()
    assert [step for step, _ in summary["style_history"]] == [e["step"] for e in samples if e["text"]]
    assert summary["style_distance"] == summary["style_history"][-1][1]

    status = run.status()
    assert status["state"] == "completed" and status["exit_code"] == 0 and status["step"] == 12
    assert "completed" in result.stderr and "step 12/12" in result.stderr

    adapter = run.adapter_dir
    assert (adapter / "adapter_model.safetensors").exists() and (adapter / "adapter_config.json").exists()
    assert not (run.path / "adapter.partial").exists()

    # The lab's promise: plain PEFT loads it, and it changes the model.
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(adapter)
    inputs = tokenizer("You wind the lamp", return_tensors="pt")
    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    with torch.no_grad():
        base_logits = base(**inputs).logits
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32), adapter)
    with torch.no_grad():
        tuned_logits = tuned(**inputs).logits
    assert (tuned_logits - base_logits).abs().max().item() > 1e-3


def test_sigterm_stops_with_a_checkpoint_and_resume_continues_the_steps(workspace, tiny_model):
    config_path = write_config(workspace, tiny_model, max_steps=30, save_steps=1000)
    result = train_cli(workspace, str(config_path), "--detach")
    assert result.returncode == 0, result.stderr
    run = Run(Path(result.stdout.strip()))
    wait_for(lambda: len(logged_steps(run)) >= 3 or not run.is_active())
    assert run.is_active(), run.log_path.read_text()

    stop = subprocess.run(stylelora_command("stop", "-w", str(workspace), run.name, "--wait"),
                          capture_output=True, text=True, timeout=120, env=cli_env())
    assert stop.returncode == 0, stop.stderr
    status = run.status()
    assert status["state"] == "stopped" and status["stop_signal"] == "SIGTERM"
    stopped_at = logged_steps(run)[-1]
    assert stopped_at < 30
    checkpoint = run.latest_checkpoint()
    assert checkpoint is not None and checkpoint.name == f"checkpoint-{stopped_at}"
    assert read_events(run.events_path)[-1]["state"] == "stopped"
    assert not run.adapter_dir.exists()

    resumed = train_cli(workspace, "--resume", run.name)
    assert resumed.returncode == 0, resumed.stderr + run.log_path.read_text()
    events = read_events(run.events_path)
    resume = next(e for e in events if e["type"] == "resume")
    assert resume["from_step"] == stopped_at
    history = training_history(events)
    assert [e["step"] for e in history] == list(range(1, 31))
    second_start = [e for e in events if e["type"] == "start"][1]
    assert second_start["step"] == stopped_at and second_start["resumed_from"].endswith(checkpoint.name)
    assert run.status()["state"] == "completed" and run.adapter_dir.exists()

    again = train_cli(workspace, "--resume", run.name)
    assert again.returncode == 2 and "already completed" in again.stderr


def test_sigkill_is_detected_as_failed_and_recorded_once(workspace, tiny_model):
    config_path = write_config(workspace, tiny_model, max_steps=200, save_steps=1000)
    result = train_cli(workspace, str(config_path), "--detach")
    run = Run(Path(result.stdout.strip()))
    wait_for(lambda: len(logged_steps(run)) >= 1)
    pid = run.read_status()["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not _pid_running(pid))

    status = run.status()
    assert status["state"] == "failed"
    assert "SIGKILL" in status["error"] and str(pid) in status["error"]
    run.status()  # a second look must not record it again
    ends = [e for e in read_events(run.events_path) if e["type"] == "end"]
    assert len(ends) == 1 and ends[0]["state"] == "failed" and ends[0]["detected_by"] == "watcher"

    listing = subprocess.run(stylelora_command("runs", "-w", str(workspace), "--json"),
                             capture_output=True, text=True, timeout=60, env=cli_env())
    assert '"state": "failed"' in listing.stdout


def _pid_running(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_trainer_survives_the_death_of_the_process_that_started_it(workspace, tiny_model):
    config_path = write_config(workspace, tiny_model, max_steps=25, save_steps=1000)
    follower = subprocess.Popen(
        stylelora_command("train", "-w", str(workspace), str(config_path)),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=cli_env(), start_new_session=True,
    )
    wait_for(lambda: Workspace(workspace).runs() and len(logged_steps(only_run(workspace))) >= 1)
    os.killpg(follower.pid, signal.SIGKILL)  # the terminal and everything in it goes away
    follower.wait(timeout=10)
    run = only_run(workspace)
    wait_for(lambda: not run.is_active(), timeout=240)
    assert run.status()["state"] == "completed", run.log_path.read_text()[-2000:]
    assert logged_steps(run)[-1] == 25


def test_a_bad_config_fails_before_anything_loads(workspace, tiny_model):
    bad = workspace / "configs" / "bad.yaml"
    bad.write_text("model:\n  name: %s\nlora:\n  r: 0\n  lora_dropuot: 0.1\ndata:\n  corpus: nowhere\n" % tiny_model)
    started = time.monotonic()
    result = train_cli(workspace, str(bad))
    assert result.returncode == 2
    assert f"{bad}:4: lora.r: must be > 0" in result.stderr
    assert "did you mean 'lora_dropout'" in result.stderr
    assert "data.corpus" in result.stderr and "nowhere" in result.stderr
    assert not (workspace / "runs").exists() or not list((workspace / "runs").iterdir())
    assert time.monotonic() - started < 10  # nothing heavy was imported


def test_a_model_that_cannot_be_found_fails_before_any_run_folder(workspace):
    cfg = write_config(workspace, Path("nobody-here/no-such-model-xyz"), backend="peft")
    started = time.monotonic()
    result = train_cli(workspace, str(cfg))
    assert result.returncode == 2
    assert time.monotonic() - started < 10  # not the minute transformers spends looking for the network
    assert "'nobody-here/no-such-model-xyz' cannot be had here" in result.stderr
    assert not (workspace / "runs").exists() or not list((workspace / "runs").iterdir())


def test_a_hub_model_the_trainer_cannot_load_fails_inside_it_with_one_end(workspace):
    """The trainer's own net, under the launch-time check: a Hub id it cannot load, offline."""
    from stylelora_tui import config as config_mod
    from stylelora_tui.runs.control import create_run, launch

    cfg = config_mod.load(write_config(workspace, Path("nobody-here/no-such-model-xyz"), backend="peft"), workspace=workspace)
    run = create_run(Workspace(workspace), cfg)  # create_run itself does not ask where the model is
    launch(run, env={**cli_env(), "HF_HUB_OFFLINE": "1"})
    wait_for(lambda: not run.is_active(), timeout=120)
    status = run.status()
    assert status["state"] == "failed" and status["error_kind"] == "model"
    assert "nobody-here/no-such-model-xyz" in status["error"] and "could not be loaded" in status["error"]
    assert [e["type"] for e in read_events(run.events_path)] == ["end"]


def test_out_of_memory_fails_with_a_plain_language_hint(workspace, tiny_model):
    config_path = write_config(workspace, tiny_model, backend="peft")
    env = {**cli_env(), "STYLELORA_FAULT": "oom_at_step:3"}
    result = subprocess.run(stylelora_command("train", "-w", str(workspace), str(config_path)),
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 1
    run = only_run(workspace)
    status = run.status()
    assert status["state"] == "failed" and status["error_kind"] == "oom"
    assert "per_device_train_batch_size" in status["error"] and "max_seq_length" in status["error"]
    end = read_events(run.events_path)[-1]
    assert end["type"] == "end" and end["error_kind"] == "oom"
    assert end["error_detail"].startswith("OutOfMemoryError: CUDA out of memory")
    assert logged_steps(run) == [1, 2]
    assert "out of memory" in result.stderr and "OutOfMemoryError" in run.log_path.read_text()


def test_a_full_disk_while_saving_the_adapter_fails_clearly_and_leaves_no_adapter(workspace, tiny_model):
    if os.geteuid() != 0:
        pytest.skip("mounting a tiny tmpfs (a real full disk) needs root")
    config_path = write_config(workspace, tiny_model, backend="peft", max_steps=8, save_steps=1000, sample_steps=-1)
    result = train_cli(workspace, str(config_path), "--detach")
    run = Run(Path(result.stdout.strip()))
    partial = run.path / "adapter.partial"
    partial.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", str(partial)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        wait_for(lambda: not run.is_active(), timeout=240)
        status = run.status()
        assert status["state"] == "failed" and status["error_kind"] == "disk", status
        assert status["error"].startswith("no space left on device (") and "--resume" in status["error"]
        assert not run.adapter_dir.exists()
        assert run.latest_checkpoint() is not None  # the work is kept: resume can save it again
    finally:
        subprocess.run(["umount", str(partial)], check=False)


def test_packed_raw_text_counts_every_real_token_once_and_no_padding(workspace, tiny_model):
    # One epoch over packed 256-token blocks (the last one short, so its batch is padded):
    # tokens_seen must be exactly the corpus's real tokens, padding left out.
    config_path = write_config(workspace, tiny_model, max_steps=-1, num_train_epochs=1.0, packing=True,
                               per_device_train_batch_size=3, save_steps=1000, sample_steps=-1)
    from stylelora_tui import config as config_mod

    cfg = config_mod.load(config_path, check_paths=False)
    cfg["data"]["format"] = "raw_text"
    config_mod.save(config_path, cfg)
    result = train_cli(workspace, str(config_path))
    run = only_run(workspace)
    assert result.returncode == 0, result.stderr + run.log_path.read_text()
    events = read_events(run.events_path)
    start, summary = events[0], next(e for e in events if e["type"] == "summary")
    assert start["data_format"] == "raw_text" and start["packing"] is True
    assert start["train_sequences"] == -(-start["train_tokens"] // 256) < start["train_records"]
    assert summary["tokens_seen"] == start["train_tokens"]
    assert start["total_steps"] == -(-start["train_sequences"] // 3)

    from transformers import AutoTokenizer

    from stylelora_tui.prompting import read_jsonl, tokenize_records

    tokenizer = AutoTokenizer.from_pretrained(run.adapter_dir)
    rows = tokenize_records(tokenizer, read_jsonl(workspace / "corpus" / "train.jsonl"), 1 << 30, "raw_text").rows
    assert start["train_tokens"] == sum(len(r["input_ids"]) for r in rows)


def test_a_time_budget_ends_the_run_completed_with_its_adapter(workspace, tiny_model):
    config_path = write_config(workspace, tiny_model, max_steps=500, max_minutes=0.0001, save_steps=1000)
    result = train_cli(workspace, str(config_path))
    run = only_run(workspace)
    assert result.returncode == 0, result.stderr + run.log_path.read_text()
    events = read_events(run.events_path)
    budget = [e for e in events if e["type"] == "budget"]
    assert len(budget) == 1 and budget[0]["step"] < 500
    assert events[-1]["state"] == "completed" and run.status()["step"] == budget[0]["step"]
    assert (run.adapter_dir / "adapter_model.safetensors").exists()
