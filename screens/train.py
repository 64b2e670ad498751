"""The Train section: launch a run, follow it live, stop, resume, fork, delete.

The app only reads run directories (through the app's ``RunWatcher``) and
sends signals through the core (``runs.launch`` / ``runs.stop``, both locked
and idempotent, so two app instances are safe). Everything that touches the
disk or spawns a process runs in a thread worker and ends with a message.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import ContentSwitcher, ProgressBar, RichLog, Static

from stylelora_tui import config as cfg
from stylelora_tui.runs.run import ACTIVE_STATES, Run, RunError
from stylelora_tui.runs.control import delete, resume_run, start_run, stop
from stylelora_tui.screens.commands import bindings
from stylelora_tui.screens.commands import train as commands
from stylelora_tui.screens.dialogs import ConfirmDialog, MessageDialog
from stylelora_tui.screens.loss_chart import ZOOMS, LossChart, Series, zoom_label
from stylelora_tui.screens.widgets import KeyBar, TitleBar
from stylelora_tui.screens.messages import LaunchReady, MemoryHint, RunActionDone
from stylelora_tui.screens.section import SectionScreen
from stylelora_tui.screens.run_watcher import RunsChanged, RunView
from stylelora_tui.screens.train_text import (
    eta,
    failure_text,
    memory_hint_text,
    run_line,
    stats_text,
    style_floor,
    style_series,
)


# --------------------------------------------------------------------------- the screen


class TrainScreen(SectionScreen):

    CSS_PATH = Path(__file__).parent / "train.tcss"
    SCOPE = "train"
    BINDINGS = bindings("train")

    def __init__(self) -> None:
        super().__init__()
        self.run_name: str | None = None  # None: follow the newest run
        self.view: RunView | None = None
        self.smooth, self.log_scale, self.zoom_index = False, False, 0
        self.shown_step = 0
        self.shown_event_time: float | None = None
        self.lags: list[float] = []  # seconds from an event's write to its display (benchmark)
        self._log_count = 0
        self._log_name: str | None = None
        self._hints: dict[str, str] = {}
        self._followed: str | None = None

    def compose(self) -> ComposeResult:
        yield TitleBar()
        yield Static("No runs yet: press n to start one from the current config.", id="run-line", markup=False)
        with Horizontal(id="train-progress-row"):
            yield ProgressBar(total=None, show_eta=False, id="train-progress")
            yield Static("", id="train-eta")
        yield Static("", id="train-stats", markup=False)
        yield Static("", id="failure", markup=False)
        yield LossChart(id="chart")
        yield Static("", id="chart-status")
        with ContentSwitcher(initial="log", id="bottom"):
            yield RichLog(id="log", max_lines=500, markup=False, wrap=False)
            with Horizontal(id="sample"):
                with VerticalScroll(classes="sample-pane"):
                    yield Static("No sample yet.", id="sample-model", markup=False)
                with VerticalScroll(classes="sample-pane"):
                    yield Static("", id="sample-author", markup=False)
        yield KeyBar()

    def on_mount(self) -> None:
        self.sub_title = "Train"
        self.app.watcher.subscribe(self)
        self.set_interval(1.0, self._tick)
        self.refresh_view()

    def on_unmount(self) -> None:
        self.app.watcher.unsubscribe(self)

    def on_screen_resume(self) -> None:
        self.refresh_view(force=True)

    def on_runs_changed(self, message: RunsChanged) -> None:
        self.refresh_view()

    def _tick(self) -> None:
        if self.view is not None and self.view.active and self.is_current:
            self.query_one("#train-stats", Static).update(stats_text(self.view))
            self.query_one("#train-eta", Static).update(eta(self.view))

    # ----------------------------------------------------------------- the live view

    def select(self, name: str | None) -> None:
        self.run_name = name
        self.refresh_view(force=True)

    def current_name(self) -> str | None:
        names = self.app.watcher.names()
        if self.run_name in names:
            return self.run_name
        return names[-1] if names else None  # names start with a time stamp: the newest

    def refresh_view(self, force: bool = False) -> None:
        if not self.is_mounted:
            return
        name = self.current_name()
        if name is None:
            if self.view is not None:  # the last run was deleted
                self.view = None
                self.query_one("#run-line", Static).update("No runs yet: press n to start one from the current config.")
                for wid in ("#train-stats", "#train-eta", "#chart-status"):
                    self.query_one(wid, Static).update("")
                self.query_one("#failure", Static).display = False
                self.query_one(LossChart).show([])
                self.query_one("#log", RichLog).clear()
                self._log_name = None
            return
        if not self.is_current and not force:
            return  # caught up in on_screen_resume
        if name != self._followed:
            self._followed = name
            self.app.watcher.follow(name)
        view = self.app.watcher.view(name)
        if view is None or (not force and self.view is not None and view.version == self.view.version and view.name == self.view.name):
            return
        self.view = view
        names = self.app.watcher.names()
        self.query_one("#run-line", Static).update(run_line(view, names.index(name), len(names)))
        bar = self.query_one("#train-progress", ProgressBar)
        bar.update(total=view.total_steps, progress=view.step)
        self.query_one("#train-eta", Static).update(eta(view))
        self.query_one("#train-stats", Static).update(stats_text(view))
        self._show_failure(view)
        self._draw_chart()
        self._show_log(view)
        self._show_sample(view)
        self.shown_step = view.step
        if view.last_event_time is not None and view.last_event_time != self.shown_event_time:
            self.shown_event_time = view.last_event_time
            self.lags.append(time.time() - view.last_event_time)
            del self.lags[:-1000]

    def _show_failure(self, view: RunView) -> None:
        failure = self.query_one("#failure", Static)
        failed = view.state == "failed"
        failure.display = failed
        if not failed:
            return
        kind = view.status.get("error_kind") or (view.end or {}).get("error_kind")
        if kind == "oom" and view.name not in self._hints:
            self._hints[view.name] = ""
            self.estimate_hint(view)
        failure.update(failure_text(view, self._hints.get(view.name) or None))
        self.query_one("#bottom", ContentSwitcher).current = "log"

    def _draw_chart(self) -> None:
        view = self.view
        chart = self.query_one(LossChart)
        if view is None:
            return
        series = [Series("train", view.train_steps, view.train_losses, "primary")]
        if view.eval_steps:
            series.append(Series("eval", view.eval_steps, view.eval_losses, "secondary", marker="dot"))
        chart.empty_text = "Waiting for the first loss..." if view.active else "No loss was logged."
        zoom = ZOOMS[self.zoom_index]
        chart.show(series, smooth=self.smooth, log_scale=self.log_scale, zoom=zoom)
        self.query_one("#chart-status", Static).update(
            f"{len(view.train_steps)} pts" + (f" + {len(view.eval_steps)} eval" if view.eval_steps else "")
            + f" | m smooth {'on' if self.smooth else 'off'} | l {'log' if self.log_scale else 'linear'}"
            + f" | z {zoom_label(zoom)} | v {'sample' if self._bottom() == 'sample' else 'trainer.log'}"
        )

    def _bottom(self) -> str:
        return self.query_one("#bottom", ContentSwitcher).current or "log"

    def _show_log(self, view: RunView) -> None:
        log = self.query_one("#log", RichLog)
        if view.name != self._log_name or view.log_count < self._log_count:
            log.clear()
            self._log_name, self._log_count = view.name, view.log_count - len(view.log_lines)
        new = view.log_count - self._log_count
        for line in view.log_lines[-new:] if new > 0 else []:
            log.write(line)
        self._log_count = view.log_count

    def _show_sample(self, view: RunView) -> None:
        sample = view.sample
        model = self.query_one("#sample-model", Static)
        author = self.query_one("#sample-author", Static)
        if not sample:
            model.update("No sample yet (train.sample_steps: every N steps, 0 = at each checkpoint).")
            author.update("")
            return
        prompt = sample.get("prompt", "")
        model.update(f"MODEL at step {sample.get('step')}{style_series(view)}:\n{prompt} >> {sample.get('text', '')}")
        author.update(f"AUTHOR{style_floor(sample)}:\n{prompt} >> {sample.get('reference', '')}")

    @work(thread=True, group="hint", exit_on_error=False)
    def estimate_hint(self, view: RunView) -> None:
        text = memory_hint_text(Run(view.path), view)
        self.post_message(MemoryHint(view.name, text))

    def on_memory_hint(self, message: MemoryHint) -> None:
        self._hints[message.name] = message.text
        self.refresh_view(force=True)

    # ----------------------------------------------------------------- view toggles

    def on_toggle_smoothing(self, _command: commands.ToggleSmoothing) -> None:
        self.smooth = not self.smooth
        self._draw_chart()

    def on_toggle_log_scale(self, _command: commands.ToggleLogScale) -> None:
        self.log_scale = not self.log_scale
        self._draw_chart()

    def on_cycle_zoom(self, _command: commands.CycleZoom) -> None:
        self.zoom_index = (self.zoom_index + 1) % len(ZOOMS)
        self._draw_chart()

    def on_toggle_bottom_pane(self, _command: commands.ToggleBottomPane) -> None:
        switcher = self.query_one("#bottom", ContentSwitcher)
        switcher.current = "sample" if switcher.current == "log" else "log"
        self._draw_chart()

    def on_step_run(self, command: commands.StepRun) -> None:
        names = self.app.watcher.names()
        if not names:
            return
        current = self.current_name()
        index = names.index(current) if current in names else len(names) - 1
        self.select(names[(index + command.delta) % len(names)])

    # ----------------------------------------------------------------- control

    def _selected(self) -> Run | None:
        name = self.current_name()
        if name is None:
            self.notify("No run selected.", severity="warning")
            return None
        return Run(self.app.workspace.runs_dir / name)

    def on_launch_run(self, _command: commands.LaunchRun) -> None:
        self.prepare_launch()

    @work(thread=True, exclusive=True, group="launch", exit_on_error=False)
    def prepare_launch(self) -> None:
        try:
            config, config_path = self.app.call_from_thread(self.app.current_config)
        except (cfg.ConfigError, RunError) as exc:
            self.post_message(RunActionDone(str(exc), error=True, title="Cannot launch"))
            return
        from stylelora_tui.training.plan import launch_summary

        summary = launch_summary(config, self.app.workspace.root).text()
        self.post_message(LaunchReady(config, config_path, summary))

    def on_launch_ready(self, message: LaunchReady) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self.do_launch(message.config, message.config_path)

        self.app.push_screen(ConfirmDialog("Start training?", message.summary, yes="Start", no="Cancel"), answered)

    @work(thread=True, exclusive=True, group="launch", exit_on_error=False)
    def do_launch(self, config: dict, config_path: Path | None) -> None:
        try:
            run, pid = start_run(self.app.workspace, config, config_path=config_path)  # checks the model first
        except (RunError, cfg.ConfigError, OSError) as exc:
            self.post_message(RunActionDone(str(exc), error=True, title="Could not start the run"))
            return
        self.post_message(RunActionDone(f"Started {run.name} (trainer pid {pid})", select=run.name))

    def on_stop_run(self, _command: commands.StopRun) -> None:
        run = self._selected()
        if run:
            self.control(run, "stop")

    def on_resume_run(self, _command: commands.ResumeRun) -> None:
        run = self._selected()
        if run:
            self.control(run, "resume")

    @work(thread=True, group="control", exit_on_error=False)
    def control(self, run: Run, verb: str) -> None:
        try:
            if verb == "stop":
                asked = stop(run)
                text = f"Asked {run.name} to checkpoint and stop" if asked else f"{run.name} is not running ({run.state})"
            elif verb == "resume":
                pid = resume_run(run)
                text = f"Resumed {run.name} (trainer pid {pid})"
            else:
                delete(run)
                text = f"Deleted {run.name}"
        except (RunError, OSError) as exc:
            self.post_message(RunActionDone(str(exc), error=True, title=f"Could not {verb} {run.name}"))
            return
        self.post_message(RunActionDone(text, select=run.name if verb == "resume" else None))

    def on_run_action_done(self, message: RunActionDone) -> None:
        if message.error:
            self.app.push_screen(MessageDialog(message.title or "Error", message.text, error=True))
        else:
            self.notify(message.text)
        if message.select:
            self.select(message.select)
        self.app.watcher.poke()

    def on_fork_run(self, _command: commands.ForkRun) -> None:
        run = self._selected()
        if run:
            self.app.fork_config(run)

    def on_delete_run(self, _command: commands.DeleteRun) -> None:
        run = self._selected()
        if run:
            confirm_delete(self, run)


def confirm_delete(screen: Any, run: Run) -> None:
    """Ask, then delete in ``screen.control`` (a worker); refused while running."""
    if run.state in ACTIVE_STATES:
        screen.notify(f"{run.name} is {run.state}: stop it first (s).", severity="error")
        return

    def answered(yes: bool | None) -> None:
        if yes:
            screen.control(run, "delete")

    screen.app.push_screen(
        ConfirmDialog("Delete run?", f"Delete {run.name} and everything in {run.path}? This cannot be undone.", yes="Delete", no="Keep"),
        answered,
    )
