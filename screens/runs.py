"""The Runs section: every run of the workspace, curves overlaid, config diff.

The table and the chart come from the app's ``RunWatcher`` (no file reading
on the UI thread); only the config diff reads two small YAML files.
"""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from stylelora_tui import config as cfg
from stylelora_tui.runs.run import Run
from stylelora_tui.screens.commands import bindings
from stylelora_tui.screens.commands import runs as commands
from stylelora_tui.screens.dialogs import MessageDialog
from stylelora_tui.screens.loss_chart import PALETTE, LossChart, Series
from stylelora_tui.screens.widgets import KeyBar, TitleBar
from stylelora_tui.screens.messages import RunActionDone
from stylelora_tui.screens.section import SectionScreen
from stylelora_tui.screens.run_watcher import RunsChanged, RunView
from stylelora_tui.screens.train import TrainScreen, confirm_delete
from stylelora_tui.screens.train_text import duration, number

COLUMNS = (("mark", " "), ("name", "Run"), ("state", "State"), ("steps", "Steps"), ("best", "Best"), ("last", "Last"), ("time", "Time"))


def row(view: RunView, marked: bool) -> tuple[str, ...]:
    total = view.total_steps
    return (
        "*" if marked else " ",
        view.name,
        view.state,
        f"{view.step}/{total}" if total else str(view.step),
        number(view.best_loss),
        number(view.last_loss),
        duration(view.duration()),
    )


def diff_text(a: Run, b: Run) -> str:
    """Which knobs changed from run a to run b."""
    try:
        first, second = a.config(), b.config()
    except cfg.ConfigError as exc:
        return f"Cannot read a config: {exc}"
    changes = cfg.diff(second, first)
    if not changes:
        return f"{a.name} and {b.name} have the same config."
    lines = [f"{a.name}  ->  {b.name}", ""]
    lines += [f"{key}: {old!r} -> {new!r}" for key, old, new in changes]
    return "\n".join(lines)


class RunsScreen(SectionScreen):

    CSS_PATH = Path(__file__).parent / "runs.tcss"
    SCOPE = "runs"
    BINDINGS = bindings("runs")

    def __init__(self) -> None:
        super().__init__()
        self.marked: list[str] = []  # in marking order
        self._versions: dict[str, int] = {}

    def compose(self) -> ComposeResult:
        yield TitleBar()
        yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="runs-status")
        yield LossChart(id="runs-chart")
        yield KeyBar()

    def on_mount(self) -> None:
        self.sub_title = "Runs"
        table = self.query_one(DataTable)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        self.app.watcher.subscribe(self)
        self.refresh_runs()
        table.focus()

    def on_unmount(self) -> None:
        self.app.watcher.unsubscribe(self)

    def on_screen_resume(self) -> None:
        self.refresh_runs(force=True)

    def on_runs_changed(self, message: RunsChanged) -> None:
        if self.is_current:
            self.refresh_runs()

    # ----------------------------------------------------------------- the table and the chart

    def refresh_runs(self, force: bool = False) -> None:
        table = self.query_one(DataTable)
        views = self.app.watcher.views()
        names = [v.name for v in views]
        for key in [str(k.value) for k in list(table.rows)]:
            if key not in names:
                table.remove_row(key)
        self.marked = [name for name in self.marked if name in names]
        changed = force
        for view in views:
            cells = row(view, view.name in self.marked)
            if view.name not in table.rows:
                table.add_row(*cells, key=view.name)
            elif force or self._versions.get(view.name) != view.version or view.active:
                for (column, _), value in zip(COLUMNS, cells):
                    table.update_cell(view.name, column, value)
            else:
                continue
            self._versions[view.name] = view.version
            changed = True
        if table.row_count and table.cursor_row < 0:
            table.move_cursor(row=table.row_count - 1)
        if changed:
            self._draw()

    def highlighted(self) -> str | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        key, _ = table.coordinate_to_cell_key((table.cursor_row, 0))
        return str(key.value)

    def _draw(self) -> None:
        chosen = self.marked or ([self.highlighted()] if self.highlighted() else [])
        series = []
        for index, name in enumerate(chosen):
            view = self.app.watcher.view(name, log=False)
            if view is not None:
                series.append(Series(name[-20:], view.train_steps, view.train_losses, PALETTE[index % len(PALETTE)]))
        chart = self.query_one(LossChart)
        chart.empty_text = "No runs yet." if not chosen else "No loss logged yet."
        chart.show(series)
        self.query_one("#runs-status", Static).update(
            f"{len(self.marked)} marked (space) | d: config diff | enter: open in Train | showing {len(series)} curve(s)"
        )

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if not self.marked:
            self._draw()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.app.open_run(str(event.row_key.value))

    # ----------------------------------------------------------------- commands (commands/runs.py)

    def on_open_run(self, _command: commands.OpenRun) -> None:
        name = self.highlighted()
        if name:
            self.app.open_run(name)

    def on_mark_run(self, _command: commands.MarkRun) -> None:
        name = self.highlighted()
        if name is None:
            return
        if name in self.marked:
            self.marked.remove(name)
        else:
            self.marked.append(name)
        self.query_one(DataTable).update_cell(name, "mark", "*" if name in self.marked else " ")
        self._draw()

    def on_diff_runs(self, _command: commands.DiffRuns) -> None:
        names = self.marked[-2:]
        if len(names) < 2:
            current = self.highlighted()
            names = (names + [current]) if current and current not in names else names
        if len(names) != 2:
            self.notify("Mark two runs with space (or mark one and highlight another), then d.", severity="warning")
            return
        runs_dir = self.app.workspace.runs_dir
        self.app.push_screen(MessageDialog("Config diff", diff_text(Run(runs_dir / names[0]), Run(runs_dir / names[1]))))

    def on_delete_highlighted_run(self, _command: commands.DeleteHighlightedRun) -> None:
        name = self.highlighted()
        if name:
            confirm_delete(self, Run(self.app.workspace.runs_dir / name))

    # Deletion runs in the same worker as the Train section's.
    control = TrainScreen.control

    def on_run_action_done(self, message: RunActionDone) -> None:
        if message.error:
            self.app.push_screen(MessageDialog(message.title or "Error", message.text, error=True))
        else:
            self.notify(message.text)
        self.app.watcher.poke()
