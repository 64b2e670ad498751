"""The Runs section and the run watcher, on hand-written run directories (fast).

The real trainer is exercised in test_app_train.py; here the event logs are
written directly, so resume semantics, thinning, the table, the overlay, the
config diff, fork and delete are checked in seconds.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from pilot_helpers import wait_until
from textual.widgets import DataTable, Static

from stylelora_tui import config as config_mod
from stylelora_tui.runs.events import EventWriter, read_events, training_history
from stylelora_tui.runs.run import Run
from stylelora_tui.runs.workspace import Workspace
from stylelora_tui.runs.control import create_run
from stylelora_tui.screens.app import make_app
from stylelora_tui.screens.config_form import ConfigScreen
from stylelora_tui.screens.dialogs import ConfirmDialog, MessageDialog
from stylelora_tui.screens.loss_chart import LossChart
from stylelora_tui.runs.follower import FULL, HEAD, Curve
from stylelora_tui.screens.run_watcher import RunWatcher
from stylelora_tui.screens.train import TrainScreen

pytestmark = pytest.mark.anyio


def fake_run(workspace: Path, name: str, *, r: int, losses: list[float], state: str = "completed", resume_at: int | None = None) -> Run:
    cfg = config_mod.defaults()
    cfg["lora"]["r"] = r
    cfg["model"]["name"] = "unsloth/Llama-3.2-3B-Instruct-bnb-4bit"
    run = create_run(Workspace(workspace), cfg, name=name)
    with EventWriter(run.events_path) as writer:
        writer.write("start", step=0, total_steps=len(losses), backend="unsloth", device="cpu", model="m")
        for step, loss in enumerate(losses, 1):
            writer.write("log", step=step, total_steps=len(losses), loss=loss, learning_rate=1e-4, epoch=step / 10)
            if resume_at is not None and step == resume_at + 2:
                # stopped after two more steps, resumed from the checkpoint at resume_at: those two are redone
                writer.write("end", state="stopped")
                writer.write("resume", from_step=resume_at)
                writer.write("start", step=resume_at, total_steps=len(losses))
                for again in range(resume_at + 1, step + 1):
                    writer.write("log", step=again, total_steps=len(losses), loss=losses[again - 1] - 0.01)
        writer.write("eval", step=len(losses), eval_loss=losses[-1] + 0.1)
        writer.write("end", state=state)
    run.update_status(state=state, started_at=time.time() - 60, ended_at=time.time())
    return run


def test_curve_is_bounded_and_keeps_the_newest_points_whole() -> None:
    curve = Curve()
    for step in range(1, 50_001):
        curve.append(step, 1.0 / step)
    assert len(curve) <= FULL + HEAD
    assert curve.steps[-FULL:] == list(range(50_001 - FULL, 50_001))
    assert curve.steps[0] == 1 and curve.steps == sorted(curve.steps)
    curve.truncate_after(49_000)
    assert curve.steps[-1] == 49_000


def test_watcher_applies_resume_semantics(tmp_path: Path) -> None:
    run = fake_run(tmp_path, "r1", r=8, losses=[3.0 - 0.1 * i for i in range(12)], resume_at=5)
    watcher = RunWatcher(Workspace(tmp_path))
    assert watcher.poll_once()
    view = watcher.view("r1")
    history = training_history(read_events(run.events_path))
    assert view.train_steps == [e["step"] for e in history] == list(range(1, 13))
    assert view.train_losses == [e["loss"] for e in history]  # the redone steps' values win
    assert view.eval_steps == [12] and view.state == "completed"
    assert not watcher.poll_once()  # nothing new: no change reported


async def test_runs_table_overlay_diff_open_fork_and_delete(tmp_path: Path) -> None:
    fake_run(tmp_path, "20250101-000000-a", r=8, losses=[3.0, 2.5, 2.0, 1.8])
    fake_run(tmp_path, "20250102-000000-b", r=16, losses=[3.1, 2.2, 1.5], state="failed")
    live = fake_run(tmp_path, "20250103-000000-live", r=8, losses=[2.0])
    live.update_status(state="running", pid=os.getpid(), ended_at=None)  # "running": this very process

    app = make_app(tmp_path, start="runs", save_settings=False)
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.screen.query_one(DataTable)
        await wait_until(pilot, lambda: table.row_count == 3)
        assert table.get_row("20250101-000000-a")[2:6] == ["completed", "4/4", "1.8000", "1.8000"]
        assert table.get_row("20250102-000000-b")[2:6] == ["failed", "3/3", "1.5000", "1.5000"]
        assert table.get_row("20250103-000000-live")[2] == "running"

        # Mark the first two: both curves overlaid, and their config diff.
        table.move_cursor(row=0)
        await pilot.press("space", "down", "space")
        await pilot.pause()
        chart = app.screen.query_one(LossChart)
        assert [s.label for s in chart.series] == ["20250101-000000-a", "20250102-000000-b"]
        assert chart.series[1].values == [3.1, 2.2, 1.5]
        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, MessageDialog))
        text = str(app.screen.query_one(".message", Static).content)
        assert "lora.r: 8 -> 16" in text and "model.name" not in text
        await pilot.press("escape")

        # A running run cannot be deleted.
        await pilot.press("down", "x")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmDialog) and live.path.exists()

        # Enter opens the highlighted run in the Train section.
        await pilot.press("up", "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, TrainScreen) and app.screen.view is not None)
        assert app.screen.view.name == "20250102-000000-b" and app.screen.view.state == "failed"
        await wait_until(pilot, lambda: app.screen.query_one("#failure").display)

        # Fork: the run's config goes into the Config section under a new name.
        await pilot.press("f")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfigScreen) and app.screen.current_file is not None)
        assert app.screen.current_file.name == "20250102-000000-b-fork.yaml"
        assert app.screen.raw_values()["lora"]["r"] == 16
        # Not saved yet: the form says so (the fork differs from the defaults it is compared with).
        await wait_until(pilot, lambda: app.config_dirty is True)
        assert not app.screen.current_file.exists()

        # Delete (confirmed) from the Runs section.
        await pilot.press("escape", "5")
        await pilot.pause()
        table = app.screen.query_one(DataTable)
        table.move_cursor(row=0)
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await wait_until(pilot, lambda: table.row_count == 2)
        assert not (tmp_path / "runs" / "20250101-000000-a").exists()


async def test_train_section_without_runs_is_usable(tmp_path: Path) -> None:
    app = make_app(tmp_path, start="train", save_settings=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert "No runs yet" in str(app.screen.query_one("#run-line", Static).content)
        await pilot.press("m", "l", "z", "v", "s", "]")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, TrainScreen) and (screen.smooth, screen.log_scale, screen.zoom_index) == (True, True, 1)
        assert screen.query_one("#bottom").current == "sample" and screen.view is None
        await pilot.press("n")  # no config saved: a clear message, not a crash
        await wait_until(pilot, lambda: isinstance(app.screen, MessageDialog))
        assert "Config section" in str(app.screen.query_one(".message", Static).content)
