"""The event log and the run directory's state, without training anything."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stylelora_tui import config as config_mod
from stylelora_tui.runs.events import EventTail, EventWriter, eval_history, read_events, training_history
from stylelora_tui.runs.run import Run, RunError, pid_alive
from stylelora_tui.runs.workspace import Workspace
from stylelora_tui.runs.control import create_run, launch, stop


def test_writer_appends_versioned_flushed_lines(tmp_path: Path):
    path = tmp_path / "events.jsonl"
    writer = EventWriter(path)
    writer.write("log", step=1, loss=2.5)
    # Flushed per event: another reader sees it before the writer closes.
    assert read_events(path) == [{"v": 1, "type": "log", "time": pytest.approx(time.time(), abs=60), "step": 1, "loss": 2.5}]
    writer.close()
    EventWriter(path).write("end", state="completed")
    assert [e["type"] for e in read_events(path)] == ["log", "end"]


def test_writer_refuses_nan_so_the_log_stays_strict_json(tmp_path: Path):
    writer = EventWriter(tmp_path / "events.jsonl")
    with pytest.raises(ValueError):
        writer.write("log", step=1, loss=float("nan"))


def test_tail_never_returns_half_a_line_and_skips_garbage(tmp_path: Path):
    path = tmp_path / "events.jsonl"
    tail = EventTail(path)
    assert tail.read() == []  # no file yet
    with open(path, "w") as handle:
        handle.write('{"type": "log", "step": 1}\nnot json at all\n{"type": "log", "st')
    assert [e["step"] for e in tail.read()] == [1]
    assert tail.malformed == 1
    with open(path, "a") as handle:
        handle.write('ep": 2}\n["a list"]\n')
    assert [e["step"] for e in tail.read()] == [2]
    assert tail.malformed == 2
    assert tail.read() == []


def test_history_after_resume_has_no_gap_and_no_duplicate():
    events = [{"type": "log", "step": s, "loss": 3.0 - s / 10} for s in range(1, 8)]
    # Killed at step 7 with the newest checkpoint at 5: steps 6-7 are redone.
    events.append({"type": "eval", "step": 6, "eval_loss": 2.0})
    events.append({"type": "resume", "from_step": 5})
    events += [{"type": "log", "step": s, "loss": 1.0} for s in range(6, 10)]
    events.append({"type": "eval", "step": 8, "eval_loss": 1.5})
    history = training_history(events)
    assert [e["step"] for e in history] == list(range(1, 10))
    assert [e["loss"] for e in history][5:] == [1.0] * 4
    assert [e["step"] for e in eval_history(events)] == [8]


def make_run(tmp_path: Path) -> Run:
    workspace = Workspace(tmp_path / "ws")
    return create_run(workspace, config_mod.defaults(), config_path=Path("lab.yaml"))


def test_create_run_writes_resolved_config_and_status(tmp_path: Path):
    run = make_run(tmp_path)
    assert run.name.endswith("-lab")
    assert run.config()["data"]["corpus"] == str((tmp_path / "ws" / "corpus").resolve())
    assert run.status()["state"] == "created"
    assert Workspace(tmp_path / "ws").find_run(run.name[:8]).path == run.path


def test_find_run_errors_are_clear(tmp_path: Path):
    workspace = Workspace(tmp_path / "ws")
    with pytest.raises(RunError, match="no run 'nothing'"):
        workspace.find_run("nothing")
    create_run(workspace, config_mod.defaults(), name="alpha-1")
    create_run(workspace, config_mod.defaults(), name="alpha-2")
    with pytest.raises(RunError, match="matches several runs: alpha-1, alpha-2"):
        workspace.find_run("alpha")


def test_a_vanished_trainer_is_recorded_as_failed_once(tmp_path: Path):
    run = make_run(tmp_path)
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    run.update_status(state="running", pid=process.pid, pid_create_time=None)
    assert not pid_alive(process.pid)
    status = run.status()
    assert status["state"] == "failed" and f"pid {process.pid}" in status["error"]
    run.status()
    assert [e["type"] for e in read_events(run.events_path)] == ["end"]


def test_a_recycled_pid_is_not_mistaken_for_the_trainer(tmp_path: Path):
    run = make_run(tmp_path)
    import os

    # Our own pid is alive, but with another start time it is another process.
    run.update_status(state="running", pid=os.getpid(), pid_create_time=1.0)
    assert run.status()["state"] == "failed"


def test_a_live_trainer_stays_running_and_stop_signals_it(tmp_path: Path):
    run = make_run(tmp_path)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        from stylelora_tui.runs.run import process_start_time

        run.update_status(state="running", pid=sleeper.pid, pid_create_time=process_start_time(sleeper.pid))
        assert run.status()["state"] == "running"
        with pytest.raises(RunError, match="already running"):
            launch(run)
        assert stop(run) is True
        assert sleeper.wait(timeout=10) != 0  # it got SIGTERM
        assert run.read_status()["state"] == "stopping"
        assert stop(run) is False  # idempotent: nothing left to stop
    finally:
        sleeper.kill()


def test_resume_needs_a_checkpoint_and_a_new_run_cannot_start_twice(tmp_path: Path):
    run = make_run(tmp_path)
    with pytest.raises(RunError, match="no checkpoint to resume from"):
        launch(run, resume=True)
    run.update_status(state="stopped")
    with pytest.raises(RunError, match="already been started"):
        launch(run)


def test_latest_checkpoint_ignores_half_written_ones(tmp_path: Path):
    run = make_run(tmp_path)
    for step, complete in ((5, True), (10, True), (15, False)):
        folder = run.checkpoints_dir / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        if complete:
            (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    assert run.latest_checkpoint().name == "checkpoint-10"


def test_unreadable_status_is_reported_not_raised(tmp_path: Path):
    run = make_run(tmp_path)
    run.status_path.write_text("{ truncated")
    status = run.status()
    assert status["state"] == "unknown" and "unreadable status file" in status["error"]


def test_delete_refuses_a_live_run_and_removes_a_dead_one(tmp_path: Path):
    from stylelora_tui.runs.control import delete
    from stylelora_tui.runs.run import process_start_time

    run = make_run(tmp_path)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run.update_status(state="running", pid=sleeper.pid, pid_create_time=process_start_time(sleeper.pid))
        with pytest.raises(RunError, match="stop it first"):
            delete(run)
        assert run.path.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    delete(run)  # its trainer is gone: recorded as failed, then deleted
    assert not run.path.exists()


def test_two_apps_resuming_one_run_at_once_start_one_trainer(tmp_path: Path):
    """Control actions from two app instances are serialised by the run's lock."""
    import threading

    from stylelora_tui.runs.run import process_start_time

    run = make_run(tmp_path)
    (run.checkpoints_dir / "checkpoint-5").mkdir(parents=True)
    (run.checkpoints_dir / "checkpoint-5" / "trainer_state.json").write_text("{}")
    run.update_status(state="stopped")
    outcomes: list[object] = []
    barrier = threading.Barrier(2)

    def resume() -> None:
        barrier.wait()
        try:
            outcomes.append(launch(run, resume=True))
        except RunError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=resume) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    pids = [o for o in outcomes if isinstance(o, int)]
    errors = [o for o in outcomes if isinstance(o, RunError)]
    try:
        assert len(pids) == 1 and len(errors) == 1, outcomes
        assert "already" in str(errors[0])
        assert run.read_status()["pid"] == pids[0]
        assert process_start_time(pids[0]) is not None
    finally:
        stop(run)  # both apps pressing stop is harmless too
        stop(run)

        deadline = time.monotonic() + 120
        while run.is_active() and time.monotonic() < deadline:
            time.sleep(0.2)
    assert not run.is_active()


def test_spawn_detached_starts_a_process_in_its_own_session_and_names_a_failure(tmp_path):
    import os
    import sys
    import time

    from stylelora_tui.runs.control import spawn_detached
    from stylelora_tui.runs.run import RunError

    log = tmp_path / "out.log"
    log.write_text("earlier\n")
    pid = spawn_detached([sys.executable, "-c", "import os, time; print(os.getsid(0), flush=True); time.sleep(0.5)"],
                         log, tmp_path, os.environ)
    assert os.getsid(pid) == pid != os.getsid(0)  # a session of its own: our terminal's hang-up never reaches it
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(log.read_text().splitlines()) < 2:
        time.sleep(0.05)
    assert log.read_text().splitlines() == ["earlier", str(pid)]  # appended, not overwritten
    with pytest.raises(RunError, match="No such file or directory"):
        spawn_detached([sys.executable, "-c", "pass"], log, tmp_path / "gone", os.environ)
