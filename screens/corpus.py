"""The Corpus section: import texts, browse and filter passages, see stats.

The core pipeline (``stylelora_tui.corpus.pipeline``) runs from a thread worker: an
import or a re-chunk in a child process (``stylelora_tui.isolated``), so even
a long one never holds the app's GIL. Progress and results come back as
messages, so widgets are only touched on the main thread.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import ContentSwitcher, DataTable, Input, Label, Static
from textual.widgets.data_table import CellDoesNotExist
from textual.worker import Worker, WorkerState

from stylelora_tui.screens.commands import bindings
from stylelora_tui.screens.commands import corpus as commands
from stylelora_tui.screens.messages import ImportFailed, ImportFinished, ImportProgress
from stylelora_tui.screens.section import SectionScreen
from stylelora_tui.screens.widgets import KeyBar, PathSuggester, TitleBar, corpus_stats

VIEWS = ("preview", "stats", "sources")
# Rows in the passage table at once. A DataTable lays out and measures every row: 12,000
# rows (forty novels) froze the app for 3 s. Sorting and the filter reach the others.
MAX_ROWS = 1000
COLUMNS = (("n", "#"), ("source", "Source"), ("words", "Words"), ("tokens", "Tok"), ("split", "Split"), ("start", "Start"))
RECHUNK_FIELDS = (("min_words", "Shortest passage (words)"), ("max_words", "Longest passage (words)"),
                  ("input_words", "Prompt words (record input)"), ("output_words", "Continuation words (record output)"))


def _source_label(source: str) -> str:
    path, _, line = source.rpartition(":")
    return f"{Path(path).name}:{line}" if path and line.isdigit() else Path(source).name


def _sort_value(passage: Any, column: str) -> Any:
    value = getattr(passage, column, None)
    if column == "start":
        return passage.text[:40].lower()
    if column == "split":
        return ("x" if passage.excluded else "") + (passage.split or "~")
    return value if value is not None else ""


class CorpusScreen(SectionScreen):

    CSS_PATH = Path(__file__).parent / "corpus.tcss"
    SCOPE = "corpus"
    BINDINGS = bindings("corpus")
    AUTO_FOCUS = "#passages"  # keys act on the table from the start (not typed into the import field)

    def __init__(self) -> None:
        super().__init__()
        self.corpus: Any = None
        self.render_record: Any = None
        self.render_note = ""
        self.sort_column = "n"
        self.sort_reverse = False
        self._cancel: threading.Event | None = None
        self._progress_widgets: tuple[Any, Static] | None = None  # (ProgressBar, its text)

    def compose(self) -> ComposeResult:
        yield TitleBar()
        with Horizontal(id="toolbar"):
            yield Label("Import ", classes="tool-label")
            yield Input(placeholder="file or folder (tab completes)", id="import-path", compact=True, suggester=PathSuggester())
            yield Label(" Filter ", classes="tool-label")
            yield Input(placeholder="text in passages", id="filter", compact=True)
        yield Horizontal(id="progress-row")  # its bar is built on the first import: see _progress()
        with Horizontal(id="corpus-body"):
            yield DataTable(id="passages", cursor_type="row", zebra_stripes=True)
            # Only the preview is built up front; the stats and sources views when first shown.
            with ContentSwitcher(initial="preview", id="side"):
                with VerticalScroll(id="preview"):
                    yield Static("Import a file or folder: press i and type its path.", id="preview-text", markup=False)
        yield Static("", id="corpus-status", classes="muted")
        yield KeyBar()

    def on_mount(self) -> None:
        self.sub_title = "Corpus"
        table = self.query_one("#passages", DataTable)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        if (self.app.workspace.corpus_dir / "report.json").exists():
            # After the first frame: the loading thread would otherwise compete with it for the GIL.
            self.call_after_refresh(self._start, "load", [], None)
        else:
            self._status("No corpus yet in this workspace. Press i to import a file or folder.")

    # ----------------------------------------------------------------- worker

    def _start(self, kind: str, sources: list[str], options: Any, ids: list[str] | None = None, excluded: bool = False) -> None:
        self._cancel = threading.Event()
        if kind in ("import", "rechunk"):
            self.query_one("#progress-row").display = True
            self._progress()[0].update(progress=0)
        self.run_pipeline(kind, sources, options, ids or [], excluded, self._cancel)

    @work(thread=True, exclusive=True, group="corpus", exit_on_error=False)
    def run_pipeline(self, kind: str, sources: list[str], options: Any, ids: list[str], excluded: bool, cancel: threading.Event) -> None:
        from stylelora_tui.corpus import pipeline as core
        from stylelora_tui.prompting import chat_renderer

        out = self.app.workspace.corpus_dir

        def progress(text: str, fraction: float | None = None) -> None:
            self.post_message(ImportProgress(text, fraction))

        # Reading and splitting sources is pure Python: in a child process, so the app stays
        # responsive (in a thread it would hold the GIL for seconds on a few books).
        from stylelora_tui.isolated import run_isolated

        errors = (core.PrepareCancelled, core.CorpusError)
        report = None
        if kind == "import":
            report = run_isolated(core.prepare, sources, out, options, progress=progress, cancel=cancel,
                                  excluded_ids=ids, errors=errors)
            if not report.output_written:
                self.post_message(ImportFailed("Nothing usable was found.\n\n" + report.format_text(max_rejects=20)))
                return
        elif kind == "rechunk":
            report = run_isolated(core.rechunk, out, options, progress=progress, cancel=cancel, errors=errors)
        elif kind == "exclude":
            core.set_excluded(out, ids, excluded)
        loaded = core.load_corpus(out)
        renderer, note = chat_renderer(self._model_name(), [self.app.workspace.root, self.app.workspace.root / "models"])
        done = {"import": "Imported", "rechunk": "Re-chunked", "exclude": "Updated", "load": "Loaded"}[kind]
        self.post_message(ImportFinished(loaded, report or loaded.report, f"{done}: {len(loaded.passages)} passages", renderer, note))

    def _model_name(self) -> str:
        from stylelora_tui import config as cfg

        from stylelora_tui.training.models import demo_model_dir

        newest = self.app.workspace.newest_config()
        try:
            name = cfg.load(newest, check_paths=False)["model"]["name"] if newest else cfg.defaults()["model"]["name"]
        except cfg.ConfigError:
            name = cfg.defaults()["model"]["name"]
        # The demo model's folder exists once the trainer has converted it.
        return str(demo_model_dir()) if name == cfg.DEMO_MODEL else name

    def on_import_progress(self, message: ImportProgress) -> None:
        bar, text = self._progress()
        if message.fraction is not None:
            bar.update(progress=max(0.0, min(1.0, message.fraction)))
        text.update(Text(f" {message.text}"[:60]))

    def on_import_finished(self, message: ImportFinished) -> None:
        self.query_one("#progress-row").display = False
        self.corpus = message.corpus
        self.render_record, self.render_note = message.renderer, message.render_note
        self.fill_table()
        self.fill_side()
        capped = f" | the table holds {MAX_ROWS}: filter (/) or sort (s) for the rest" if len(self.corpus.passages) > MAX_ROWS else ""
        self._status(message.note + capped + (f" | {self.render_note}" if self.render_note else ""))

    def on_import_failed(self, message: ImportFailed) -> None:
        self.query_one("#progress-row").display = False
        from stylelora_tui.screens.dialogs import MessageDialog

        self.app.push_screen(MessageDialog("Import failed", message.error, error=True))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "corpus" or event.state not in (WorkerState.ERROR, WorkerState.CANCELLED):
            return
        self.query_one("#progress-row").display = False
        if event.state == WorkerState.CANCELLED or type(event.worker.error).__name__ == "PrepareCancelled":
            event.prevent_default()  # the user's own doing: not a failure for the app's handler
            self.notify("Import cancelled; the corpus is unchanged")
        # Any other error goes on to the app's one handler (SectionScreen hands it over).

    # ----------------------------------------------------------------- views

    def _status(self, text: str) -> None:
        self.query_one("#corpus-status", Static).update(Text(text))

    def visible_passages(self) -> list[Any]:
        if self.corpus is None:
            return []
        needle = self.query_one("#filter", Input).value.strip().lower()
        shown = [p for p in self.corpus.passages if not needle or needle in p.text.lower() or needle in p.source.lower()]
        return sorted(shown, key=lambda p: _sort_value(p, self.sort_column), reverse=self.sort_reverse)

    def fill_table(self) -> None:
        table = self.query_one("#passages", DataTable)
        keep = None
        if table.row_count:
            try:
                keep = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
            except CellDoesNotExist:
                keep = None
        table.clear()
        visible = self.visible_passages()
        for p in visible[:MAX_ROWS]:
            split = "excl" if p.excluded else (p.split or "-")
            start = " ".join(p.text.split())[:40]
            table.add_row(p.n, _source_label(p.source), p.words, p.tokens, split, start, key=p.id)
        if keep is not None and keep in table.rows:
            table.move_cursor(row=table.get_row_index(keep))
        total = len(self.corpus.passages) if self.corpus else 0
        arrow = "v" if self.sort_reverse else "^"
        if len(visible) > MAX_ROWS:
            table.border_title = f"first {MAX_ROWS} of {len(visible)}/{total}, by {self.sort_column} {arrow}"
        else:
            table.border_title = f"{table.row_count}/{total} passages, by {self.sort_column} {arrow}"
        self.show_preview()

    def _progress(self) -> tuple[Any, Static]:
        """The import progress bar and its text, built on first use (most starts never need them)."""
        if self._progress_widgets is None:
            from textual.widgets import ProgressBar

            self._progress_widgets = ProgressBar(total=1.0, show_eta=False, id="progress"), Static("", id="progress-text")
            self.query_one("#progress-row").mount(*self._progress_widgets)
        return self._progress_widgets

    async def show_view(self, name: str) -> None:
        """Show a side view (preview, stats, sources), building it the first time."""
        switcher = self.query_one("#side", ContentSwitcher)
        if not switcher.query_children(f"#{name}"):
            if name == "stats":
                view = VerticalScroll(Static("", id="stats-text"), id="stats")
            else:
                view = DataTable(id="sources", cursor_type="row")
                for key, label in (("source", "Source"), ("passages", "Passages"), ("words", "Words"), ("excluded", "Excl")):
                    view.add_column(label, key=key)
            await switcher.add_content(view)
            if self.corpus is not None:
                self.fill_side()
        switcher.current = name

    def fill_side(self) -> None:
        """Fill the stats and sources views that exist yet."""
        if self.query("#stats-text"):
            self._fill_stats()
        if self.query("#sources"):
            self._fill_sources()

    def _fill_stats(self) -> None:
        self.query_one("#stats-text", Static).update(corpus_stats(self.corpus))

    def _fill_sources(self) -> None:
        sources = self.query_one("#sources", DataTable)
        sources.clear()
        grouped: dict[str, list[Any]] = {}
        for p in self.corpus.passages:
            grouped.setdefault(p.source.rpartition(":")[0] or p.source, []).append(p)
        for path, passages in sorted(grouped.items()):
            sources.add_row(Path(path).name, len(passages), sum(p.words for p in passages), sum(p.excluded for p in passages))

    def current_passage(self) -> Any:
        table = self.query_one("#passages", DataTable)
        if self.corpus is None or not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return next((p for p in self.corpus.passages if p.id == key), None)

    def show_preview(self) -> None:
        from stylelora_tui.corpus.pipeline import passage_to_record
        from stylelora_tui.prompting import plain_record

        passage = self.current_passage()
        target = self.query_one("#preview-text", Static)
        if passage is None:
            target.update("No passage matches the filter." if self.corpus else "No corpus yet.")
            return
        record = self.corpus.record_for(passage.id)
        note = f"{passage.split} record" if record else "no record (excluded or too short); as it would be"
        if record is None:
            record = passage_to_record(passage.text, self.corpus.options)
        text = Text()
        text.append(f"{_source_label(passage.source)}  {passage.words} words{'  EXCLUDED' if passage.excluded else ''}\n\n", style="bold")
        text.append(passage.text + "\n\n")
        text.append(f"What the model sees ({note}; {self.render_note}):\n", style="bold")
        if record is None:
            text.append("(too short for an instruction record)")
        else:
            try:
                rendered = self.render_record(record) if self.render_record else plain_record(record)
            except Exception as exc:  # a template that fails on this record
                rendered = f"(chat template failed: {exc})\n{plain_record(record)}"
            text.append(rendered, style="italic")
        target.update(text)

    @on(DataTable.RowHighlighted, "#passages")
    def _highlighted(self) -> None:
        self.show_preview()

    @on(DataTable.HeaderSelected, "#passages")
    def _header(self, event: DataTable.HeaderSelected) -> None:
        self._sort_by(str(event.column_key.value))

    @on(Input.Changed, "#filter")
    def _filter(self) -> None:
        if self.corpus is not None:
            self.fill_table()

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        self.query_one("#passages").focus()

    @on(Input.Submitted, "#import-path")
    def _import(self, event: Input.Submitted) -> None:
        from stylelora_tui.corpus.pipeline import PrepareOptions

        path = Path(event.value.strip()).expanduser()
        if not event.value.strip():
            return
        if not path.exists():
            self.notify(f"No such file or folder: {path}", severity="error")
            return
        sources = list(self.corpus.report.sources) if self.corpus else []
        if str(path.resolve()) not in sources:
            sources.append(str(path.resolve()))
        options = self.corpus.options if self.corpus else PrepareOptions()
        kept = [p.id for p in self.corpus.passages if p.excluded] if self.corpus else []
        self._start("import", sources, options, kept)
        self.query_one("#passages").focus()

    # ----------------------------------------------------------------- commands (commands/corpus.py)

    def _sort_by(self, column: str) -> None:
        self.sort_reverse = (not self.sort_reverse) if column == self.sort_column else False
        self.sort_column = column
        self.fill_table()

    def on_sort_passages(self, _command: commands.SortPassages) -> None:
        self._sort_by(self._next_column())

    def _next_column(self) -> str:
        keys = [k for k, _ in COLUMNS]
        if not self.sort_reverse:
            return self.sort_column  # same column again: reverse
        return keys[(keys.index(self.sort_column) + 1) % len(keys)]

    def on_import_path(self, _command: commands.ImportPath) -> None:
        self.query_one("#import-path").focus()

    def on_filter_passages(self, _command: commands.FilterPassages) -> None:
        self.query_one("#filter").focus()

    def on_focus_table(self, _command: commands.FocusTable) -> None:
        self.query_one("#passages").focus()

    async def on_cycle_side_pane(self, _command: commands.CycleSidePane) -> None:
        current = self.query_one("#side", ContentSwitcher).current or "preview"
        view = VIEWS[(VIEWS.index(current) + 1) % len(VIEWS)]
        await self.show_view(view)
        self._status(f"Showing {view} (v: next)")

    def on_toggle_excluded(self, _command: commands.ToggleExcluded) -> None:
        passage = self.current_passage()
        if passage is None:
            return
        self._start("exclude", [], None, [passage.id], not passage.excluded)

    def on_cancel_import(self, _command: commands.CancelImport) -> None:
        if self._cancel is not None:
            self._cancel.set()

    def on_rechunk(self, _command: commands.Rechunk) -> None:
        if self.corpus is None:
            self.notify("Import a corpus first", severity="warning")
            return
        options = self.corpus.options
        fields = [(name, label, str(getattr(options, name))) for name, label in RECHUNK_FIELDS]

        def chosen(values: dict[str, str] | None) -> None:
            if not values:
                return
            from stylelora_tui.corpus.pipeline import PrepareOptions

            data = options.to_dict()
            try:
                data.update({name: int(text) for name, text in values.items()})
            except ValueError:
                self.notify("Bounds must be whole numbers of words", severity="error")
                return
            new = PrepareOptions.from_dict(data)
            problems = new.validate()
            if problems:
                self.notify("; ".join(problems), severity="error", timeout=8)
                return
            self._start("rechunk", [], new)

        from stylelora_tui.screens.dialogs import FieldsDialog

        self.app.push_screen(FieldsDialog("Re-chunk the sources", fields, ok="Re-chunk", note="Passages that keep their text stay excluded."), chosen)
