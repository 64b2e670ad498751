"""The Adapters section: every finished run's adapter and every mix, with its recipe and its uses.

The list comes from the core (``adapters.list_adapters``) in a worker thread,
reloaded when the app's ``RunWatcher`` sees a finished run appear, change or
go. Mark two or more adapters (space) and press m: the mix dialog checks the
recipe with the core, then ``stylelora-tui mix`` runs in its own process (the
CLI picks the fastest thread count), its progress on the status line, ctrl+x
cancels it, and the new adapter is listed and highlighted when it is done.
c opens the marked (or highlighted) adapters in Compare; e merges the
highlighted one into the base (``stylelora-tui export --merge``).
"""

from __future__ import annotations

from pathlib import Path

from stylelora_tui.screens.commands import adapters as commands
from stylelora_tui.screens.commands import bindings
from stylelora_tui.screens.dialogs import MessageDialog
from stylelora_tui.screens.mix_dialog import MixDialog, MixRequest
from stylelora_tui.screens.run_watcher import RunsChanged
from stylelora_tui.screens.section import SectionScreen
from stylelora_tui.screens.widgets import KeyBar, TitleBar
from textual import work
from textual.app import ComposeResult
from textual.message import Message
from textual.widgets import DataTable, Static

from stylelora_tui.adapters import (
    MERGEABLE_PEFT_TYPES,
    AdapterInfo,
    CliJob,
    list_adapters,
    mix_arguments,
)

COLUMNS = (("mark", " "), ("name", "Adapter"), ("made", "Made"), ("shape", "PEFT"), ("format", "Format"), ("base", "Base"))


def row(info: AdapterInfo, marked: bool) -> tuple[str, ...]:
    made = "mix: " + str(info.recipe.get("method")) if info.recipe is not None else "trained"
    base = info.base_model.rsplit("/", 1)[-1]
    return ("*" if marked else " ", info.name, made, "?" if info.problem else info.shape_text(), info.data_format, base)


class AdaptersLoaded(Message):
    def __init__(self, adapters: list[AdapterInfo]) -> None:
        super().__init__()
        self.adapters = adapters


class JobOutput(Message):
    """A line of the mix or merge process."""

    def __init__(self, job: CliJob, line: str) -> None:
        super().__init__()
        self.job, self.line = job, line


class JobEnded(Message):
    def __init__(self, job: CliJob, what: str, name: str) -> None:
        super().__init__()
        self.job, self.what, self.name = job, what, name


class AdaptersScreen(SectionScreen):

    CSS_PATH = Path(__file__).parent / "adapters.tcss"
    SCOPE = "adapters"
    BINDINGS = bindings("adapters")

    def __init__(self) -> None:
        super().__init__()
        self.adapters: dict[str, AdapterInfo] = {}
        self.marked: list[str] = []  # in marking order: the mix's order
        self.loaded = False
        self.job: CliJob | None = None
        self.job_line = ""
        self.select_after: str | None = None  # highlight this adapter once it is listed
        self._seen: tuple = ()

    def compose(self) -> ComposeResult:
        yield TitleBar()
        yield DataTable(id="adapters-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="adapters-details", markup=False)
        yield Static("", id="adapters-status", markup=False)
        yield KeyBar()

    def on_mount(self) -> None:
        self.sub_title = "Adapters"
        table = self.query_one(DataTable)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        self.app.watcher.subscribe(self)
        self.reload()
        table.focus()

    def on_unmount(self) -> None:
        self.app.watcher.unsubscribe(self)
        if self.job is not None:
            self.job.cancel()

    def on_screen_resume(self) -> None:
        self.reload()

    def on_runs_changed(self, _message: RunsChanged) -> None:
        # Only finished runs hold adapters: reload when one appears, changes or goes, not on every training step.
        seen = tuple((v.name, v.state) for v in self.app.watcher.views() if v.state == "completed")
        if seen != self._seen:
            self._seen = seen
            self.reload()

    # ----------------------------------------------------------------- the list

    def reload(self) -> None:
        self.load_adapters()

    @work(thread=True, exclusive=True, group="adapters-list", exit_on_error=False)
    def load_adapters(self) -> None:
        self.post_message(AdaptersLoaded(list_adapters(self.app.workspace)))

    def on_adapters_loaded(self, message: AdaptersLoaded) -> None:
        self.loaded = True
        self.adapters = {info.name: info for info in message.adapters}
        self.marked = [name for name in self.marked if name in self.adapters]
        table = self.query_one(DataTable)
        current = self.highlighted()
        table.clear()
        for info in message.adapters:
            table.add_row(*row(info, info.name in self.marked), key=info.name)
        wanted = self.select_after if self.select_after in self.adapters else current
        if wanted in self.adapters:
            table.move_cursor(row=table.get_row_index(wanted))
            self.select_after = None if wanted == self.select_after else self.select_after
        self.show_details()

    def highlighted(self) -> str | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        key, _ = table.coordinate_to_cell_key((table.cursor_row, 0))
        return str(key.value)

    def on_data_table_row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self.show_details()

    def show_details(self) -> None:
        info = self.adapters.get(self.highlighted() or "")
        if info is not None:
            text = info.details() if not info.problem else f"{info.name}: {info.problem}"
        elif self.loaded:
            text = "No adapters yet: a run that trains to the end (Train section) leaves one here."
        else:
            text = "Reading the runs..."
        self.query_one("#adapters-details", Static).update(text)
        self.show_status()

    def show_status(self) -> None:
        if self.job is not None:
            text = f"{self.job_line} (ctrl+x cancels)"
        else:
            text = f"{len(self.marked)} marked (space) | m: mix marked | c: compare | e: merge"
        self.query_one("#adapters-status", Static).update(text)

    # ----------------------------------------------------------------- commands (commands/adapters.py)

    def on_mark_adapter(self, _command: commands.MarkAdapter) -> None:
        name = self.highlighted()
        if name is None:
            return
        if name in self.marked:
            self.marked.remove(name)
        else:
            self.marked.append(name)
        self.query_one(DataTable).update_cell(name, "mark", "*" if name in self.marked else " ")
        self.show_status()

    def on_mix_adapters(self, _command: commands.MixAdapters) -> None:
        if self.job is not None:
            self.notify("A mix or merge is running: wait for it, or cancel it (ctrl+x).", severity="warning")
            return
        if len(self.marked) < 2:
            self.notify("Mark two or more adapters with space, then m.", severity="warning")
            return
        names = list(self.marked)
        shapes = [self.adapters[name].shape_text() for name in names]
        taken = set(self.adapters) | set(self.app.watcher.names())

        def chosen(request: MixRequest | None) -> None:
            if request is not None:
                self.select_after = request.name
                args = mix_arguments(self.app.workspace, request.names, method=request.method, weights=request.weights,
                                     density=request.density, name=request.name)
                self.start_job(CliJob(args), f"mixing {request.name}", request.name)

        self.app.push_screen(MixDialog(self.app.workspace, names, shapes, taken), chosen)

    def on_compare_adapters(self, _command: commands.CompareAdapters) -> None:
        names = list(self.marked) or ([self.highlighted()] if self.highlighted() else [])
        if not names:
            self.notify("No adapter to compare yet.", severity="warning")
            return
        self.app.open_compare(names)

    def on_merge_adapter(self, _command: commands.MergeAdapter) -> None:
        info = self.adapters.get(self.highlighted() or "")
        if info is None:
            return
        if info.peft_type not in MERGEABLE_PEFT_TYPES:
            self.notify(f"{info.name} is a {info.peft_type} adapter: it adds learned tokens, so there are no weight "
                        "changes to merge into the base.", severity="warning")
            return
        if self.job is not None:
            self.notify("A mix or merge is running: wait for it, or cancel it (ctrl+x).", severity="warning")
            return
        self.start_job(CliJob(["export", info.name, "-w", str(self.app.workspace.root), "--merge"]),
                       f"merging {info.name}", info.name)

    def on_cancel_adapter_job(self, _command: commands.CancelAdapterJob) -> None:
        if self.job is None:
            self.notify("Nothing to cancel.")
            return
        self.job.cancel()
        self.job_line = "cancelling..."
        self.show_status()

    # ----------------------------------------------------------------- the mix or merge process

    def start_job(self, job: CliJob, what: str, name: str) -> None:
        self.job, self.job_line = job, f"{what}: starting"
        self.show_status()
        self.run_job(job, what, name)

    @work(thread=True, exclusive=True, group="adapters-job", exit_on_error=False)
    def run_job(self, job: CliJob, what: str, name: str) -> None:
        try:
            for line in job.start().follow():
                self.post_message(JobOutput(job, f"{what}: {line}"))
        finally:
            self.post_message(JobEnded(job, what, name))

    def on_job_output(self, message: JobOutput) -> None:
        if message.job is self.job:
            self.job_line = message.line[:120]
            self.show_status()

    def on_job_ended(self, message: JobEnded) -> None:
        job = message.job
        if job is not self.job:
            return
        self.job = None
        if job.returncode == 0:
            if job.args[0] == "mix":
                self.marked = []  # the sources are mixed: the new adapter, highlighted, is what c and e act on now
            self.notify(f"{message.what}: done", title="Adapters", timeout=8)
        elif job.cancelled:
            self.notify(f"{message.what}: cancelled", title="Adapters", severity="warning")
        else:
            self.select_after = None
            self.app.push_screen(MessageDialog(f"{message.what.capitalize()} failed", job.error_text(), error=True))
        self.app.watcher.poke()
        self.reload()
