"""The Runs section: every run of the workspace, curves overlaid, config diff; a sweep's table.

The table and the chart come from the app's ``RunWatcher`` (no file reading
on the UI thread); only the config diff reads two small YAML files. A sweep's
table (``w``) is built by the core (``sweeps.table``) in a worker thread, and
sorted and marked there; this screen only lays it out.
"""

from __future__ import annotations

from pathlib import Path

from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.widgets import DataTable, Static
from textual.worker import Worker, WorkerState

from stylelora_tui import config as cfg
from stylelora_tui.runs.run import Run, RunError
from stylelora_tui.sweeps.table import COLUMNS as SWEEP_HEADERS
from stylelora_tui.sweeps.table import fmt_bytes, fmt_loss, fmt_seconds, fmt_steps, fmt_style, params_text, sort_rows
from stylelora_tui.screens.commands import bindings
from stylelora_tui.screens.commands import runs as commands
from stylelora_tui.screens.dialogs import ChoiceDialog, MessageDialog
from stylelora_tui.screens.loss_chart import PALETTE, LossChart, Series
from stylelora_tui.screens.widgets import KeyBar, TitleBar
from stylelora_tui.screens.messages import RunActionDone
from stylelora_tui.screens.section import SectionScreen
from stylelora_tui.screens.run_watcher import RunsChanged, RunView
from stylelora_tui.screens.train import TrainScreen, confirm_delete
from stylelora_tui.screens.train_text import duration, number

COLUMNS = (("mark", " "), ("name", "Run"), ("state", "State"), ("steps", "Steps"), ("best", "Best"), ("last", "Last"), ("time", "Time"))


# The sweep table at 80 columns: no run name (the status line names the highlighted trial's run).
SWEEP_COLUMNS = (("best", " "), ("number", "#"), ("params", "Params"), ("state", "State"), ("steps", "Steps"), ("final_train_loss", "Final"),
                 ("best_eval_loss", "Eval"), ("style_distance", "Style"), ("duration_s", "Time"), ("peak_memory_bytes", "Mem"))
READ_EVERY = 2.0  # seconds between two reads of a sweep's table while its runs change
SORT_CYCLE = ("number", "best_eval_loss", "final_train_loss", "style_distance", "duration_s", "peak_memory_bytes",
              "params", "state", "steps")
SORT_NAMES = dict(SWEEP_HEADERS) | {"number": "trial", "params": "params", "state": "state",
                                    "best_eval_loss": "best eval", "final_train_loss": "final loss",
                                    "style_distance": "style", "duration_s": "time", "peak_memory_bytes": "peak memory", "steps": "steps"}


def sweep_cells(row: dict[str, Any]) -> tuple[str, ...]:
    return ("*" if row["best"] else " ", str(row["number"]), params_text(row["params"]), row["run_state"] or row["state"], fmt_steps(row),
            fmt_loss(row["final_train_loss"]), fmt_loss(row["best_eval_loss"]), fmt_style(row),
            fmt_seconds(row["duration_s"]), fmt_bytes(row["peak_memory_bytes"]))


def sweep_key(row: dict[str, Any]) -> str:
    """A trial's row key: its run's name, or ``#N`` while it has none."""
    return row["run"] or f"#{row['number']}"


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
        self.sweep_name: str | None = None  # the sweep shown, or None for every run
        self.sweep_rows: list[dict[str, Any]] = []  # the core's rows, unsorted
        self.sort_key, self.descending = "number", False
        self._reading = self._read_again = False

    def compose(self) -> ComposeResult:
        yield TitleBar()
        yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="runs-status")
        yield LossChart(id="runs-chart")
        yield KeyBar()

    def on_mount(self) -> None:
        self.sub_title = "Runs"
        table = self.query_one(DataTable)
        self._columns(COLUMNS)
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

    def _columns(self, columns: tuple[tuple[str, str], ...]) -> None:
        table = self.query_one(DataTable)
        table.clear(columns=True)
        for key, label in columns:
            table.add_column(label, key=key)
        self._versions.clear()

    def refresh_runs(self, force: bool = False) -> None:
        if self.sweep_name is not None:
            self.load_sweep_table()
            self._draw_sweep()  # the curves come from the watcher: live at once
            return
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
        """The highlighted row's run (None for none, or for a sweep trial with no run yet)."""
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        key, _ = table.coordinate_to_cell_key((table.cursor_row, 0))
        return None if str(key.value).startswith("#") else str(key.value)

    def _draw(self) -> None:
        if self.sweep_name is not None:
            self._draw_sweep()
            return
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
        if not self.marked or self.sweep_name is not None:
            self._draw()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if not str(event.row_key.value).startswith("#"):
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
        if self.sweep_name is None:  # the sweep table's first column marks the best trial instead
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

    # ----------------------------------------------------------------- a sweep's table

    def on_show_sweep(self, _command: commands.ShowSweep) -> None:
        if self.sweep_name is not None:  # back to every run
            self.sweep_name, self.sweep_rows, self.marked = None, [], []
            self._columns(COLUMNS)
            self.refresh_runs(force=True)
            return
        self.list_sweeps()

    @work(thread=True, exclusive=True, group="sweep-list", exit_on_error=False)
    def list_sweeps(self) -> list[str]:
        from stylelora_tui.sweeps.sweep import list_sweeps

        return [sweep.name for sweep in list_sweeps(self.app.workspace)]

    def _choose_sweep(self, names: list[str]) -> None:
        if not names:
            self.notify("No sweeps in this workspace yet: Start sweep in the Config section (or "
                        "`stylelora-tui sweep CONFIG`).", severity="warning")
        elif len(names) == 1:
            self.show_sweep(names[0])
        else:
            choices = [(name, name) for name in reversed(names)]  # newest first
            self.app.push_screen(ChoiceDialog("Show which sweep?", choices), self.show_sweep)

    def show_sweep(self, name: str | None) -> None:
        if not name:
            return
        self.sweep_name, self.sweep_rows, self.marked = name, [], []
        self._columns(self._sweep_columns())
        self._draw()
        self.load_sweep_table()

    def _sweep_columns(self) -> tuple[tuple[str, str], ...]:
        arrow = "v" if self.descending else "^"  # plain characters: every terminal font has them
        return tuple((key, label + arrow if key == self.sort_key else label) for key, label in SWEEP_COLUMNS)

    def load_sweep_table(self) -> None:
        """Read the sweep's table in a worker; one at a time, the last request read again after it."""
        if self._reading:
            self._read_again = True
            return
        self._reading = True
        self.read_sweep_table(self.sweep_name)

    def _read_later(self) -> None:
        if self.sweep_name is None:
            self._reading = False
        else:
            self.read_sweep_table(self.sweep_name)

    @work(thread=True, group="sweep-table", exit_on_error=False)
    def read_sweep_table(self, name: str) -> tuple[str, list[dict[str, Any]] | None, str]:
        from stylelora_tui.sweeps.sweep import find_sweep
        from stylelora_tui.sweeps.table import sweep_table

        try:
            return name, sweep_table(find_sweep(self.app.workspace, name)), ""
        except (RunError, cfg.ConfigError, OSError) as exc:
            return name, None, str(exc)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        group = event.worker.group
        if group == "sweep-table" and event.state in (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            if event.state == WorkerState.SUCCESS:
                self._sweep_read(*event.worker.result)
            if self._read_again and self.sweep_name is not None:
                # Runs report changes several times a second while training: the table follows every few
                # seconds (still "reading" meanwhile, so the changes in between wait for that read).
                self._read_again = False
                self.set_timer(READ_EVERY, self._read_later)
            else:
                self._reading = False
        elif group == "sweep-list" and event.state == WorkerState.SUCCESS:
            self._choose_sweep(event.worker.result)

    def _sweep_read(self, name: str, rows: list[dict[str, Any]] | None, error: str) -> None:
        if name != self.sweep_name:
            return  # left, or another sweep chosen, while it was read
        if rows is None:  # back to every run, so the error is told once
            self.notify(f"Cannot read sweep {name}: {error}", severity="error")
            self.on_show_sweep(commands.ShowSweep())
            return
        self.sweep_rows = rows
        self._fill_sweep_table()

    def _fill_sweep_table(self) -> None:
        table = self.query_one(DataTable)
        rows = sort_rows(self.sweep_rows, self.sort_key, descending=self.descending)
        keys = [sweep_key(r) for r in rows]
        if [str(k.value) for k in table.rows] != keys:  # new trials or a new order: lay the rows out again
            kept = table.coordinate_to_cell_key((table.cursor_row, 0))[0].value if table.row_count else None
            table.clear()
            for item, key in zip(rows, keys):
                table.add_row(*sweep_cells(item), key=key)
            table.move_cursor(row=keys.index(kept) if kept in keys else 0)
        else:
            for item, key in zip(rows, keys):
                for (column, _), value in zip(SWEEP_COLUMNS, sweep_cells(item)):
                    table.update_cell(key, column, value)
        self._draw_sweep()

    def on_sort_sweep(self, _command: commands.SortSweep) -> None:
        self._sort(SORT_CYCLE[(SORT_CYCLE.index(self.sort_key) + 1) % len(SORT_CYCLE)], self.descending)

    def on_reverse_sort(self, _command: commands.ReverseSort) -> None:
        self._sort(self.sort_key, not self.descending)

    def _sort(self, key: str, descending: bool) -> None:
        if self.sweep_name is None:
            self.notify("Sorting is for a sweep's table: w shows one.", severity="warning")
            return
        self.sort_key, self.descending = key, descending
        self._columns(self._sweep_columns())
        self._fill_sweep_table()

    def _draw_sweep(self) -> None:
        rows = sort_rows(self.sweep_rows, self.sort_key, descending=self.descending)
        shown = [r for r in rows if r["run"] and (not self.marked or r["run"] in self.marked)]
        series = []
        for index, item in enumerate(shown):
            view = self.app.watcher.view(item["run"], log=False)
            if view is not None:
                label = ("* " if item["best"] else "") + params_text(item["params"])
                series.append(Series(label[:24], view.train_steps, view.train_losses, PALETTE[index % len(PALETTE)]))
        chart = self.query_one(LossChart)
        chart.empty_text = "No trial has started yet." if not rows else "No loss logged yet."
        chart.show(series)
        name = self.highlighted()
        arrow = "highest" if self.descending else "lowest"
        self.query_one("#runs-status", Static).update(
            f"{name or self.sweep_name} | by {SORT_NAMES[self.sort_key]}, {arrow} first | o sort, r reverse, w all runs"
        )

    def on_run_action_done(self, message: RunActionDone) -> None:
        if message.error:
            self.app.push_screen(MessageDialog(message.title or "Error", message.text, error=True))
        else:
            self.notify(message.text)
        self.app.watcher.poke()
