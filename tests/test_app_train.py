"""The Train section against the real trainer (a tiny Llama on this CPU).

Launch from the app, watch loss rows arrive, quit the app mid-run and
re-attach from a new one (whole curve, nothing missing or doubled), stop and
resume (continuous steps), SIGKILL (failed), and an injected out-of-memory
error (the plain-language hint with the memory estimate).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any, Callable

import pytest

import pilot_helpers
from conftest import write_tiny_config
from stylelora_tui import config as config_mod
from stylelora_tui.runs.events import read_events, training_history
from stylelora_tui.runs.run import Run
from stylelora_tui.runs.workspace import Workspace
from stylelora_tui.runs.control import create_run, launch
from stylelora_tui.screens.app import make_app
from textual.widgets import Static

from stylelora_tui.screens.dialogs import ConfirmDialog
from stylelora_tui.screens.train import TrainScreen
from stylelora_tui.screens.train_text import PLAIN_OOM_HINT

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


def write_config(workspace: Path, model: Path, *, name: str = "config", **train: Any) -> Path:
    """Small and quick: batch 2, sequence 128, no mid-run checkpoints or samples unless asked."""
    settings = {"per_device_train_batch_size": 2, "save_steps": 1000, "sample_steps": -1, **train}
    return write_tiny_config(workspace, model, name=name, max_seq_length=128, **settings)


async def wait_until(pilot, predicate: Callable[[], Any], timeout: float = 180.0, what: str = "") -> None:
    """The shared wait, with a longer default: training runs take minutes on two busy cores."""
    await pilot_helpers.wait_until(pilot, predicate, timeout, what)


def train_screen(app) -> TrainScreen:
    assert isinstance(app.screen, TrainScreen), app.screen
    return app.screen


async def test_launch_reattach_stop_resume(workspace: Path, tiny_model: Path) -> None:
    # Enough steps that the stop below lands before the end, however fast a step is.
    write_config(workspace, tiny_model, max_steps=60, sample_steps=4, sample_max_new_tokens=8)

    # 1. Launch from the app, after the confirm dialog; loss rows arrive.
    app = make_app(workspace, start="train", save_settings=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), 30, "the confirm dialog")
        text = "\n".join(str(s.content) for s in app.screen.query(Static))
        for part in (str(tiny_model), "Backend:    unsloth", "Device:", "Trainable:", "Memory:", "Steps:      60"):
            assert part in text, text
        await pilot.press("y")
        screen = None

        def rows(n: int) -> bool:
            view = train_screen(app).view
            return view is not None and len(view.train_steps) >= n

        await wait_until(pilot, lambda: isinstance(app.screen, TrainScreen) and rows(2), 240, "loss rows")
        screen = train_screen(app)
        run = Run(screen.view.path)
        assert screen.view.active and screen.view.train_steps[:2] == [1, 2]
        assert screen.view.start["backend"] == "unsloth"
        seen_before_quit = screen.view.step
    # 2. The app is gone; the trainer is not.
    assert run.is_active()

    app = make_app(workspace, start="train", save_settings=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: train_screen(app).view is not None and train_screen(app).view.step > seen_before_quit, 120, "re-attach")
        view = train_screen(app).view
        history = [e["step"] for e in training_history(read_events(run.events_path))]
        assert view.train_steps == list(range(1, view.step + 1))  # nothing missing, nothing doubled
        assert history[: len(view.train_steps)] == view.train_steps

        # The newest sample beside the author's text.
        await wait_until(pilot, lambda: train_screen(app).view.sample is not None, 120, "a sample")
        await pilot.press("v")
        await pilot.pause()
        author = str(app.screen.query_one("#sample-author", Static).content)
        assert "AUTHOR" in author and train_screen(app).view.sample["reference"][:20] in author.replace("\n", " ")
        # The style arriving, in numbers: the samples' distance to the author beside the author's own.
        sample = train_screen(app).view.sample
        model_pane = str(app.screen.query_one("#sample-model", Static).content)
        if sample["style_distance"] is not None:
            assert "style Δ" in model_pane and f"{sample['style_distance']:.2f}" in model_pane
        assert f"style Δ {sample['reference_style_distance']:.2f}" in author

        # 3. Stop: checkpoint, then "stopped".
        await pilot.press("s")
        await wait_until(pilot, lambda: train_screen(app).view.state == "stopped", 120, "stopped")
        stopped_at = train_screen(app).view.step
        assert stopped_at < 60 and run.latest_checkpoint().name == f"checkpoint-{stopped_at}"
        await pilot.press("s")  # a second stop is harmless: no error dialog, still stopped
        await pilot.pause(0.5)
        assert train_screen(app).view.state == "stopped"

        # 4. Resume: steps continue, the curve carries on.
        await pilot.press("r")
        await wait_until(pilot, lambda: train_screen(app).view.state == "completed", 240, "completed")
        view = train_screen(app).view
        assert view.train_steps == list(range(1, 61))
        assert [e["step"] for e in training_history(read_events(run.events_path))] == list(range(1, 61))
        assert "COMPLETED" in str(app.screen.query_one("#run-line", Static).content)


async def test_sigkill_and_oom_show_failed_with_the_hint(workspace: Path, tiny_model: Path) -> None:
    ws = Workspace(workspace)
    long_cfg = config_mod.load(write_config(workspace, tiny_model, name="long", max_steps=400), workspace=workspace)
    oom_cfg = config_mod.load(write_config(workspace, tiny_model, name="oom"), workspace=workspace)
    killed = create_run(ws, long_cfg, name="a-killed")
    oom = create_run(ws, oom_cfg, name="b-oom")
    launch(killed)
    launch(oom, env={**os.environ, "STYLELORA_FAULT": "oom_at_step:2"})

    app = make_app(workspace, start="train", save_settings=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = train_screen(app)
        screen.select("a-killed")
        await wait_until(pilot, lambda: screen.view is not None and screen.view.step >= 1, 240, "a first step")
        os.kill(int(killed.read_status()["pid"]), signal.SIGKILL)
        await wait_until(pilot, lambda: screen.view.state == "failed", 60, "the killed run to fail")
        failure = app.screen.query_one("#failure", Static)
        assert failure.display and "SIGKILL" in str(failure.content)
        ends = [e for e in read_events(killed.events_path) if e["type"] == "end"]
        assert len(ends) == 1 and ends[0]["state"] == "failed"

        await pilot.press("]")  # the next run: b-oom
        await wait_until(pilot, lambda: screen.view.name == "b-oom" and screen.view.state == "failed", 240, "the OOM")
        await wait_until(pilot, lambda: "Memory estimate for this config" in str(failure.content), 30, "the estimate")
        text = str(failure.content)
        assert "Failed (oom)" in text and PLAIN_OOM_HINT in text
        log_text = "\n".join(screen.view.log_lines)
        assert "OutOfMemoryError" in log_text  # the end of trainer.log is on screen

        # Deleting a failed run is allowed (after the confirm); the app is still alive.
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), 10, "the delete confirm")
        await pilot.press("y")
        await wait_until(pilot, lambda: not oom.path.exists(), 30, "the deletion")
        await wait_until(pilot, lambda: app.watcher.names() == ["a-killed"], 10, "the watcher to forget it")
