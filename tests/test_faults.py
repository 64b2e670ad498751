"""Hostile input and faults: names that leave their folder, a model that cannot be had, a full disk, one end.

The full-disk tests mount a small tmpfs (a real full disk, root only); the
training ones run the tiny model through the real trainer subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import cli_env, stylelora_command, write_corpus, write_tiny_config
from stylelora_tui import config as config_mod
from stylelora_tui.paths import BadName, check_name
from stylelora_tui.runs.control import create_run
from stylelora_tui.runs.events import read_events
from stylelora_tui.runs.run import Run, RunError, pid_alive
from stylelora_tui.runs.workspace import Workspace

BAD_NAMES = ["../../escape", "a/b", "a\\b", "..", ".", ".hidden", "", "  ", "tab\tname"]


def cli(workspace: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 300):
    return subprocess.run(
        stylelora_command(*args[:1], "-w", str(workspace), *args[1:]), capture_output=True, text=True,
        timeout=timeout, env=env or cli_env(), stdin=subprocess.DEVNULL,
    )


def stray_temp_files(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.name.endswith(".tmp")]


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_name_that_is_not_one_plain_path_component_is_refused(name):
    with pytest.raises(BadName, match="run name"):
        check_name(name, "run name")


def test_good_names_pass():
    for name in ("20261204-tiny", "lab_r16", "v1.2", "Ünïcode-name"):
        assert check_name(name) == name


def test_create_run_refuses_a_name_outside_runs_and_makes_nothing(tmp_path):
    workspace = Workspace(tmp_path / "ws")
    for name in BAD_NAMES:
        with pytest.raises(RunError, match="run name"):
            create_run(workspace, config_mod.defaults(), name=name)
    assert not (tmp_path / "ws").exists() and not (tmp_path / "escape").exists()


def test_train_name_cannot_escape_the_workspace(workspace, tiny_model):
    config_path = write_tiny_config(workspace, tiny_model, backend="peft")
    result = cli(workspace, "train", str(config_path), "--name", "../../escape")
    assert result.returncode == 2
    assert "run name '../../escape' contains a path separator" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (workspace.parent / "escape").exists() and not (workspace / "escape").exists()
    assert not (workspace / "runs").exists() or not list((workspace / "runs").iterdir())


# --------------------------------------------------------------------------- the model, before the run


def lab_config(workspace: Path, model: str) -> Path:
    cfg = config_mod.defaults()
    cfg["model"]["name"] = model
    path = workspace / "configs" / "hub.yaml"
    config_mod.save(path, cfg)
    return path


@pytest.mark.parametrize(
    "model, offline",
    [("nobody-here/no-such-model-xyz", False), ("unsloth/Llama-3.2-3B-Instruct-bnb-4bit", True)],
)
def test_a_hub_model_that_cannot_be_had_fails_in_seconds_without_a_run_folder(workspace, tmp_path, model, offline):
    env = cli_env()
    env["HF_HUB_CACHE"] = str(tmp_path / "empty-hf-cache")
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    else:
        env.pop("HF_HUB_OFFLINE", None)  # ask the Hub: unreachable here, or answering "no such model"
    started = time.monotonic()
    result = cli(workspace, "train", str(lab_config(workspace, model)), env=env, timeout=60)
    elapsed = time.monotonic() - started
    assert result.returncode == 2, result.stderr
    assert elapsed < 10, elapsed
    message = result.stderr
    assert f"model {model!r} cannot be had here" in message
    assert "not a local folder" in message and "not in the local Hugging Face cache" in message
    assert ("HF_HUB_OFFLINE is set" in message) if offline else ("Hub" in message)
    assert "download it on a connected machine" in message and "local model folder" in message
    assert "Traceback" not in message
    assert not (workspace / "runs").exists() or not list((workspace / "runs").iterdir())


def test_a_model_in_the_local_cache_is_found_offline_and_loaded_offline(tmp_path):
    """A cached Hub model needs no network: found in the cache, and the trainer is told to stay offline."""
    cache = tmp_path / "hf-cache"
    snapshot = cache / "models--someone--cached-model" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (cache / "models--someone--cached-model" / "refs").mkdir()
    (cache / "models--someone--cached-model" / "refs" / "main").write_text("a" * 40)
    code = (
        "from stylelora_tui.training.models import check_model_available as c; "
        "s = c('someone/cached-model'); print(s.where, s.needs_offline_mode, s.path)"
    )
    env = {**cli_env(), "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["cache", "True", str(snapshot)]


def test_the_model_check_imports_no_torch(tmp_path):
    code = (
        "import sys\nfrom stylelora_tui.training.models import check_model_available, ModelUnavailable\n"
        "try:\n    check_model_available('nobody/none')\nexcept ModelUnavailable:\n    pass\n"
        "print(sorted(m for m in ('torch', 'transformers', 'textual') if m in sys.modules))"
    )
    env = {**cli_env(), "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert result.stdout.strip() == "[]", result.stderr


# --------------------------------------------------------------------------- a full disk


@pytest.fixture
def small_disk(tmp_path: Path):
    """A folder on its own tiny file system, grown by ``grow(size)``; root only."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs (a real full disk) needs root")
    mount_point = tmp_path / "disk"
    mount_point.mkdir()

    def mount(size: str) -> Path:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        return mount_point

    def grow(size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(mount_point)], check=True)

    mount.grow = grow  # type: ignore[attr-defined]
    yield mount
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(folder: Path) -> None:
    """Use up every byte left on ``folder``'s file system."""
    with open(folder / "filler", "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError:
            pass


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_runs_lists_a_full_disk_read_only_and_leaves_no_temp_files(small_disk):
    root = small_disk("256k")
    run = create_run(Workspace(root), config_mod.defaults(), name="was-running")
    run.update_status(state="running", pid=dead_pid(), pid_create_time=None)
    before = run.status_path.read_bytes()
    fill(root)
    result = subprocess.run(stylelora_command("runs", "-w", str(root)), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "was-running" in result.stdout and "failed" in result.stdout
    listed = subprocess.run(stylelora_command("runs", "--json", "-w", str(root)), capture_output=True, text=True, timeout=60)
    summary = json.loads(listed.stdout)[0]
    assert summary["state"] == "failed" and "ended without saying why" in summary["error"]
    assert run.status_path.read_bytes() == before  # nothing could be written, and nothing was half-written
    assert stray_temp_files(root) == []
    # Once there is room again, the failure is recorded, once.
    (root / "filler").unlink()
    assert run.status()["state"] == "failed" and run.read_status()["state"] == "failed"
    run.status()
    assert [e["type"] for e in read_events(run.events_path)] == ["end"]


@pytest.mark.slow
def test_a_disk_that_fills_during_training_fails_clearly_once_and_resume_picks_the_last_complete_checkpoint(
    small_disk, tiny_model
):
    # Room for the corpus, the run and about one and a half checkpoints of the tiny model (~260 kB each).
    root = small_disk("700k")
    write_corpus(root / "corpus")
    config_path = write_tiny_config(root, tiny_model, backend="peft", max_steps=12, save_steps=2, sample_steps=-1)
    result = cli(root, "train", str(config_path))
    assert result.returncode == 1
    own_output = result.stderr.split("end of trainer.log:")[0]
    assert "Traceback" not in own_output and "Errno 28" not in own_output
    assert "failed: no space left on device (" in result.stderr
    run = Workspace(root).runs()[0]
    status = run.read_status()
    assert status["state"] == "failed" and status["error_kind"] == "disk", status
    assert status["error"].startswith("no space left on device (") and f"MB free at {run.path})" in status["error"]
    assert f"--resume {run.name}" in status["error"]
    ends = [e for e in read_events(run.events_path) if e["type"] == "end"]
    assert len(ends) == 1 and ends[0]["error"] == status["error"]
    assert stray_temp_files(root) == [] and not (run.path / ".space-reserve").exists()
    half_written = [p for p in run.checkpoints_dir.iterdir() if not (p / "trainer_state.json").exists()]
    complete = run.latest_checkpoint()
    assert half_written and complete is not None
    assert int(complete.name.split("-")[1]) < int(half_written[0].name.split("-")[1])

    small_disk.grow("8m")
    resumed = cli(root, "train", "--resume", run.name)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    resume_event = next(e for e in read_events(run.events_path) if e["type"] == "resume")
    assert resume_event["checkpoint"] == str(complete)
    assert run.read_status()["state"] == "completed" and run.adapter_dir.is_dir()


@pytest.mark.slow
def test_a_failing_run_has_exactly_one_end_even_when_its_status_was_lost(workspace, tiny_model):
    config_path = write_tiny_config(workspace, tiny_model, backend="peft")
    env = {**cli_env(), "STYLELORA_FAULT": "oom_at_step:2"}
    result = cli(workspace, "train", str(config_path), env=env)
    assert result.returncode == 1
    run = Workspace(workspace).runs()[0]
    assert [e["type"] for e in read_events(run.events_path)].count("end") == 1
    # The trainer wrote its end, then its last status write was lost (a full disk, a kill):
    # whoever looks next must adopt the trainer's own end, not add a second one.
    status = run.read_status()
    deadline = time.monotonic() + 60
    while pid_alive(status["pid"], status["pid_create_time"]) and time.monotonic() < deadline:
        time.sleep(0.1)  # the trainer is still exiting
    run.update_status(state="running", pid=status["pid"], pid_create_time=status["pid_create_time"])
    seen = Run(run.path).status()
    assert seen["state"] == "failed" and seen["error_kind"] == "oom"
    assert [e["type"] for e in read_events(run.events_path)].count("end") == 1
    assert run.read_status()["error_kind"] == "oom"
