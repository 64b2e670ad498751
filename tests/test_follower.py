"""The core run follower (no Textual): one replay rule, callbacks, threads or none."""

from __future__ import annotations

import io
import itertools
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from stylelora_tui import config as config_mod
from stylelora_tui.cli.follow import follow
from stylelora_tui.runs.control import create_run
from stylelora_tui.runs.events import eval_history, training_history
from stylelora_tui.runs.follower import Curve, RunFollower
from stylelora_tui.runs.run import Run, process_start_time
from stylelora_tui.runs.workspace import Workspace


def resumed_sequence() -> list[dict[str, Any]]:
    """Killed at step 7 with the newest checkpoint at 5, resumed; steps and evals seen twice."""
    events: list[dict[str, Any]] = [{"type": "start", "step": 0, "total_steps": 10}]
    events += [{"type": "log", "step": s, "loss": 3.0 - s / 10} for s in range(1, 8)]
    events += [{"type": "eval", "step": 4, "eval_loss": 2.9}, {"type": "eval", "step": 6, "eval_loss": 2.8}]
    events += [{"type": "resume", "from_step": 5}, {"type": "start", "step": 5, "total_steps": 10}]
    events += [{"type": "log", "step": s, "loss": 1.0 + s / 100} for s in range(6, 10)]
    events.append({"type": "eval", "step": 8, "eval_loss": 1.5})
    # A step written again without a resume: the later event wins, nothing after it is dropped.
    events.append({"type": "log", "step": 9, "loss": 0.5})
    events.append({"type": "eval", "step": 4, "eval_loss": 2.5})
    events.append({"type": "log", "step": 3, "loss": 0.25})
    events.append({"type": "log", "step": 10, "loss": 0.75})
    events.append({"type": "log", "step": "eleven", "loss": 0.1})  # not a step: skipped by both, not fatal
    return events


def new_run(root: Path, name: str = "r1") -> Run:
    return create_run(Workspace(root), config_mod.defaults(), name=name)


def append(run: Run, events: list[dict[str, Any]]) -> None:
    with open(run.events_path, "a", encoding="utf-8") as handle:
        for event in events:
            handle.write(json.dumps({"v": 1, "time": time.time(), **event}) + "\n")


def test_live_curves_equal_the_histories_rebuilt_from_the_file(tmp_path: Path) -> None:
    events = resumed_sequence()
    run = new_run(tmp_path)
    follower = RunFollower(Workspace(tmp_path))
    # Fed in pieces, as a live trainer writes them: the cut falls between the resume and its redone steps.
    for piece in (events[:5], events[5:12], events[12:16], events[16:]):
        append(run, piece)
        assert follower.poll_once()
    view = follower.view(run.name)
    train = [(e["step"], e["loss"]) for e in training_history(events)]
    evals = [(e["step"], e["eval_loss"]) for e in eval_history(events)]
    assert list(zip(view.train_steps, view.train_losses)) == train
    assert list(zip(view.eval_steps, view.eval_losses)) == evals
    assert train[2] == (3, 0.25) and train[8:] == [(9, 0.5), (10, 0.75)]
    assert evals == [(4, 2.5), (8, 1.5)]
    assert view.step == 10 and view.last_log["step"] == 10 and view.best_loss == 0.25
    assert view.total_steps == 10


def test_a_resume_lowers_the_step_to_the_checkpoint_and_drops_later_points(tmp_path: Path) -> None:
    run = new_run(tmp_path)
    follower = RunFollower.of_run(run)
    append(run, [{"type": "log", "step": s, "loss": 1.0 / s} for s in range(1, 8)])
    follower.poll_once()
    append(run, [{"type": "resume", "from_step": 5}])
    follower.poll_once()
    view = follower.view(run.name)
    assert view.step == 5 and view.train_steps == [1, 2, 3, 4, 5] and view.best_loss == 0.2


def test_a_step_without_a_loss_leaves_no_point(tmp_path: Path) -> None:
    events = [{"type": "log", "step": 1, "loss": 2.0}, {"type": "log", "step": 2, "loss": 1.0}, {"type": "log", "step": 2, "loss": None}]
    run = new_run(tmp_path)
    append(run, events)
    follower = RunFollower.of_run(run)
    follower.poll_once()
    view = follower.view(run.name)
    assert view.train_steps == [e["step"] for e in training_history(events) if e["loss"] is not None] == [1]
    assert view.best_loss == 2.0


def test_curve_put_inserts_replaces_and_removes_in_step_order() -> None:
    curve = Curve()
    for step, value in ((1, 1.0), (3, 3.0), (2, 2.0), (3, 3.5), (4, None), (1, None)):
        curve.put(step, value)
    assert (curve.steps, curve.values) == ([2, 3], [2.0, 3.5])


def test_of_run_follows_one_run_and_hands_over_every_event_in_order(tmp_path: Path) -> None:
    followed, other = new_run(tmp_path, "a"), new_run(tmp_path, "b")
    seen: list[tuple[str, int]] = []
    follower = RunFollower.of_run(followed, on_events=lambda name, events: seen.extend((name, e["step"]) for e in events))
    append(other, [{"type": "log", "step": 1, "loss": 1.0}])
    append(followed, [{"type": "log", "step": s, "loss": 1.0} for s in (1, 2, 3)])
    assert follower.poll_once()
    append(followed, [{"type": "log", "step": 4, "loss": 1.0}])
    follower.poll_once()
    assert follower.names() == ["a"] and seen == [("a", 1), ("a", 2), ("a", 3), ("a", 4)]
    assert not follower.poll_once()  # nothing new: no change reported


def test_the_thread_coalesces_changes_into_a_few_notices(tmp_path: Path) -> None:
    run = new_run(tmp_path)
    notices: list[float] = []
    changed = threading.Event()

    def on_change() -> None:
        notices.append(time.monotonic())
        changed.set()

    follower = RunFollower(Workspace(tmp_path), on_change=on_change, interval=0.001, max_rate=5.0)
    follower.start()
    try:
        assert changed.wait(5)  # the new run was found
        started = time.monotonic()
        for step in range(1, 301):
            append(run, [{"type": "log", "step": step, "loss": 1.0}])
            time.sleep(0.002)
        deadline = time.monotonic() + 5
        while follower.view(run.name).step < 300 and time.monotonic() < deadline:
            time.sleep(0.05)
        elapsed = time.monotonic() - started
        time.sleep(0.3)  # the last change is still reported once the gap has passed
    finally:
        follower.stop()
    assert follower.view(run.name).step == 300
    late = [t for t in notices if t >= started]
    assert 1 <= len(late) <= 5.0 * (elapsed + 0.3) + 2  # about max_rate a second, not one per event
    gaps = [b - a for a, b in itertools.pairwise(late)]
    assert all(gap >= 0.15 for gap in gaps), gaps  # 0.2 s apart, give or take a busy machine
    assert follower.notified == len(notices)


def test_cli_follow_prints_each_event_as_the_trainer_writes_it(tmp_path: Path) -> None:
    run = new_run(tmp_path)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    run.update_status(state="running", pid=sleeper.pid, pid_create_time=process_start_time(sleeper.pid))

    def trainer() -> None:
        append(run, [{"type": "start", "step": 0, "total_steps": 2, "model": "m", "backend": "peft", "device": "cpu",
                      "dtype": "float32", "trainable_params": 10, "total_params": 1000, "trainable_ratio": 0.01,
                      "train_records": 4}])
        time.sleep(0.2)
        append(run, [{"type": "log", "step": 1, "total_steps": 2, "loss": 2.5}, {"type": "eval", "step": 1, "eval_loss": 2.25}])
        time.sleep(0.2)
        append(run, [{"type": "log", "step": 2, "total_steps": 2, "loss": 2.0}, {"type": "end", "state": "completed"}])
        run.update_status(state="completed", ended_at=time.time())

    writer = threading.Thread(target=trainer)
    writer.start()
    out = io.StringIO()
    try:
        code = follow(run, out=out, poll_seconds=0.02)
    finally:
        writer.join()
        sleeper.kill()
        sleeper.wait()
    assert code == 0
    assert out.getvalue().splitlines() == [
        "training m with peft on cpu (float32): 10 of 1,000 parameters trainable (1.00%), 4 records, 2 steps",
        f"[{'#' * 12}{'-' * 12}]  step 1/2  loss 2.5000",
        "step 1: eval loss 2.2500",
        f"[{'#' * 24}]  step 2/2  loss 2.0000",
        "completed",
        f"adapter: {run.adapter_dir}",
    ]


def test_cli_follow_reports_a_trainer_that_died_without_an_end(tmp_path: Path) -> None:
    run = new_run(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run.update_status(state="running", pid=dead.pid, pid_create_time=None)
    append(run, [{"type": "log", "step": 1, "loss": 2.0}])
    run.log_path.write_text("loading\nKilled\n")
    out = io.StringIO()
    assert follow(run, out=out, poll_seconds=0.02) == 1
    lines = out.getvalue().splitlines()
    assert lines[0] == "step 1  loss 2.0000"
    # The end the follower's status check records is printed in the same pass.
    assert lines[1].startswith("failed: ") and f"pid {dead.pid}" in lines[1]
    assert lines[2:] == ["end of trainer.log:", "loading", "Killed"]


def test_the_eta_is_the_time_budgets_when_that_ends_the_run_first(tmp_path: Path) -> None:
    from stylelora_tui.screens.train_text import eta

    run = new_run(tmp_path)
    run.update_status(state="running")
    events = [{"type": "start", "step": 0, "total_steps": 100, "max_minutes": 1.0, "time": 1000.0}]
    events += [{"type": "log", "step": s, "loss": 1.0, "time": 1000.0 + 10 * s} for s in range(1, 4)]  # 10 s a step
    with open(run.events_path, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps({"v": 1, **e}) + "\n" for e in events)
    follower = RunFollower.of_run(run)
    follower.poll_once()
    assert eta(follower.view(run.name)) == "ETA 30s (time budget 1 min)"  # 60 s budget, 30 s trained: not 97 steps' 16m
    with open(run.events_path, "a", encoding="utf-8") as handle:  # resumed at step 3 with no budget
        handle.write(json.dumps({"v": 1, "type": "start", "step": 3, "total_steps": 100, "max_minutes": 0, "time": 1040.0}) + "\n")
        for step in (4, 5):
            handle.write(json.dumps({"v": 1, "type": "log", "step": step, "loss": 1.0, "time": 1010.0 + 10 * step}) + "\n")
    follower.poll_once()
    assert eta(follower.view(run.name)) == "ETA 15m50s"  # 95 steps at 10 s
