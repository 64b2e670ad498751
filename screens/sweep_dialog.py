"""Start a sweep from the Config form: the form's config plus a grid typed one key a line.

The grid is read and checked by the core (``sweeps.grid.parse_grid_text``,
then every grid point by the config's own rules); the sweep is made and its
runner started by ``sweeps.sweep.start_from_config``, in a worker, as
``stylelora-tui sweep CONFIG --detach`` does. Problems stay in the dialog.
"""

from __future__ import annotations

import time
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, Static, TextArea
from textual.worker import Worker, WorkerState

from stylelora_tui import config as cfg
from stylelora_tui.paths import BadName, check_name
from stylelora_tui.runs.run import RunError
from stylelora_tui.screens.dialogs import Dialog
from stylelora_tui.sweeps.grid import parse_grid_text, point_problems, points


HINT = "One key a line, values after a colon (lora.r: 8, 16). Module lists: q_proj v_proj | q_proj k_proj"


class SweepDialog(Dialog["str | None"]):
    """The sweep's name, grid and trials at once; ``dismiss(sweep name)`` once its runner has started."""

    DEFAULT_CSS = """
    SweepDialog { align: center middle; }
    SweepDialog TextArea { height: 5; }
    SweepDialog #sweep-problems { color: $error; height: auto; max-height: 4; }
    SweepDialog .hint { color: $text-muted; }
    SweepDialog .row { height: 1; }
    SweepDialog .row Label { width: auto; }
    SweepDialog #sweep-name { width: 1fr; }
    SweepDialog #sweep-parallel { width: 4; }
    """
    BINDINGS = [
        Binding("ctrl+s", "start", "Start", priority=True),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, config: dict[str, dict[str, Any]], name: str) -> None:
        super().__init__()
        self.config, self._name = config, name

    def compose(self) -> ComposeResult:
        r, lr = self.config["lora"]["r"], self.config["train"]["learning_rate"]
        example = f"lora.r: {r}, {r * 2}\ntrain.learning_rate: {lr:g}, {lr * 2:g}\n"
        with Vertical(classes="dialog"):
            yield Label("Start a sweep of the form's config", classes="title")
            yield Static(HINT, markup=False, classes="hint")
            with Horizontal(classes="row"):
                yield Label("Name ")
                yield Input(self._name, id="sweep-name", compact=True)
                yield Label(" trials at once ")
                yield Input("1", id="sweep-parallel", compact=True, restrict=r"[0-9]*", max_length=2)
            yield TextArea(example, id="sweep-grid", show_line_numbers=True, soft_wrap=False)
            yield Static("", id="sweep-problems", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Start (ctrl+s)", id="start", variant="primary")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one(TextArea).focus()

    def problems(self, text: str) -> tuple[dict[str, list[Any]], list[str]]:
        """The grid, and every problem with it (its lines, its values, each grid point's config checks)."""
        grid, found = parse_grid_text(text)
        if not found:
            found = point_problems(self.config, grid, check_paths=False)
        return grid, [str(problem) for problem in found]

    def action_start(self) -> None:
        name = self.query_one("#sweep-name", Input).value.strip()
        parallel_text = self.query_one("#sweep-parallel", Input).value.strip() or "1"
        grid, problems = self.problems(self.query_one(TextArea).text)
        try:
            check_name(name, "sweep name")
        except BadName as exc:
            problems.insert(0, str(exc))
        if int(parallel_text) < 1:
            problems.append("at once: give how many trials train at the same time (1 or more)")
        if problems:
            self.query_one("#sweep-problems", Static).update("\n".join(problems))
            return
        self.query_one("#sweep-problems", Static).update(f"Starting sweep {name}: {len(points(grid))} runs...")
        self.query_one("#start", Button).disabled = True
        self.start(name, grid, int(parallel_text))

    @work(thread=True, exclusive=True, group="sweep-start", exit_on_error=False)
    def start(self, name: str, grid: dict[str, list[Any]], parallel: int) -> str | None:
        """The started sweep's name, or the reason it could not start (as ``!reason``)."""
        from stylelora_tui.sweeps.sweep import start_from_config

        try:
            return start_from_config(self.app.workspace, self.config, grid, name, parallel=parallel).name
        except (RunError, cfg.ConfigError, OSError) as exc:
            return f"!{exc}"

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "sweep-start" or event.state not in (WorkerState.SUCCESS, WorkerState.ERROR):
            return
        result = event.worker.result if event.state == WorkerState.SUCCESS else f"!{event.worker.error}"
        if isinstance(result, str) and not result.startswith("!"):
            self.dismiss(result)
            return
        self.query_one("#sweep-problems", Static).update(f"Could not start the sweep: {str(result)[1:]}")
        self.query_one("#start", Button).disabled = False

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "start":
            self.action_start()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)


def open_sweep_dialog(screen: Any) -> None:
    """Check the form's config (``screen``: the Config section's ``ConfigScreen``), then ask for the grid; a notification names the started sweep."""
    config, problems = cfg.validate(screen.raw_values(), workspace=screen.app.workspace.root, check_paths=False)
    if problems:
        screen.notify(f"Fix {len(problems)} problem(s) first: {problems[0]}", severity="error", timeout=6)
        return
    stem = screen.current_file.stem if screen.current_file else "sweep"
    name = f"{stem}-{time.strftime('%m%d-%H%M')}"

    def started(sweep: str | None) -> None:
        if sweep:
            screen.notify(f"Started sweep {sweep} (the Runs section's w shows its table; "
                          f"`stylelora-tui sweep status {sweep}`)", timeout=8)

    screen.app.push_screen(SweepDialog(config, name), started)
