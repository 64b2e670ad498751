"""The Compare section: the same prompt answered by the base model and by adapters, side by side.

A run's saved comparison (compare.json) is shown at once; otherwise, or on
``r``, one generation process holds the base model with every picked run's
adapter, and ``GenerationJobs`` (core) runs it in a worker thread, posting the
protocol lines here in batches (a few redraws a second). What is compared and
computed lives in a ``CompareSession`` (core, no Textual); this screen keeps
the widgets, keys, workers and handlers, touched on the main thread only.
Closing the screen shuts the process down; a worker's failure goes to the
app's one handler (``SectionScreen``).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.widgets import Input, Static

from stylelora_tui.compare.build import default_runs, run_choices
from stylelora_tui.compare.jobs import GenerationJobs, Job
from stylelora_tui.compare.publish import ExportRequest, export_compare, open_session, stop_process
from stylelora_tui.compare.session import SETTING_FIELDS, CompareSession, parse_settings
from stylelora_tui.runs.run import Run
from stylelora_tui.runs.workspace import Workspace
from stylelora_tui.screens.commands import bindings
from stylelora_tui.screens.commands import compare as commands
from stylelora_tui.screens.compare_dialogs import ExportDialog, RunPicker
from stylelora_tui.screens.compare_widgets import PromptLine, SamplePane, SamplePanes, ScoreTable
from stylelora_tui.screens.dialogs import ChoiceDialog, FieldsDialog, MessageDialog
from stylelora_tui.screens.messages import ExportDone, ExportProgress, GenerationBatch, ModelFailed, ModelReady, StyleReady
from stylelora_tui.screens.section import SectionScreen
from stylelora_tui.screens.widgets import KeyBar, TitleBar


class CompareScreen(SectionScreen):
    SCOPE = "compare"
    BINDINGS = bindings("compare")
    CSS_PATH = Path(__file__).parent / "compare.tcss"
    AUTO_FOCUS = ""  # the first pane is focused once mounted; the prompt field only on t

    def __init__(self, workspace: Workspace | None = None, runs: list[str | Path] | None = None,
                 settings: dict[str, Any] | None = None) -> None:
        """``workspace``: default the app's; ``runs``: names or folders to compare first (default: the newest finished run)."""
        super().__init__()
        self.workspace: Workspace = workspace  # type: ignore[assignment]  # set on mount when None
        self.requested_runs = [str(r) for r in runs] if runs else None
        self.session = CompareSession([], settings)
        self.settings_chosen = settings is not None  # a saved comparison made otherwise is set aside
        self.jobs: GenerationJobs | None = None
        self.gen_job: Job | None = None  # the generate request in flight
        self.error = ""
        self.activity = ""
        self._style_key = 0
        self._export_proc: subprocess.Popen | None = None

    def compose(self) -> ComposeResult:
        yield TitleBar()
        yield PromptLine("", id="compare-prompt", markup=False)
        yield Input(placeholder="type a prompt; enter generates, esc leaves", id="compare-typed", compact=True)
        yield Static("", id="compare-status")
        yield Static("", id="compare-error", classes="problem")
        yield SamplePanes(id="compare-panes")
        yield ScoreTable("", id="compare-scores")
        yield KeyBar()

    def on_mount(self) -> None:
        self.sub_title = "Compare"
        if self.workspace is None:
            self.workspace = self.app.workspace  # type: ignore[attr-defined]
        self.set_runs(self._initial_runs())

    def on_unmount(self) -> None:
        self.shutdown()

    def _initial_runs(self) -> list[Run]:
        if not self.requested_runs:
            return default_runs(self.workspace)
        found = []
        for name in self.requested_runs:
            try:
                found.append(self.workspace.find_run(name))
            except Exception as exc:  # noqa: BLE001 - a RunError: say it
                self.show_error(str(exc))
        return found

    # ----------------------------------------------------------------- the generation process

    def set_runs(self, runs: list[Run]) -> None:
        """Compare these runs with the base: one process for all of them (started afresh)."""
        self.shutdown()
        self.session, notes = open_session(runs, self.session.settings, self.settings_chosen)
        for text, severity in notes:
            self.notify(text, severity=severity, timeout=10)  # type: ignore[arg-type]
        self.show_error("")
        panes = self.query_one("#compare-panes", SamplePanes)
        panes.remove_children()
        if not runs:
            self.activity = ""
            panes.mount(Static("No run to compare yet: train one (Train section), then press u to pick it.", classes="muted"))
            self.refresh_views()
            return
        panes.mount_all(SamplePane(variant) for variant in self.session.variants)
        if self.session.saved is not None:  # shown as saved: the model loads only when asked to generate
            self.activity = f"saved {self.session.saved.get('created')} (compare.json) · r: generate again"
        else:
            if self.session.records:
                self.session.pending = (self.session.records[0], self.session.record_label(0))
            self.start_process()
        self.refresh_views()
        self.call_after_refresh(self._panes_mounted)

    def start_process(self) -> None:
        """Start the generation process for the runs compared (it answers the pending prompt once ready)."""
        self.jobs = GenerationJobs([run.path for run in self.session.runs])
        self.activity = f"loading the base model and {len(self.jobs.run_dirs)} adapter(s)..."
        self.run_process(self.jobs)

    def _panes_mounted(self) -> None:
        self.query_one(SamplePanes).show_sides()
        self.refresh_views()
        if self.focused is None or not self.focused.is_attached:
            self.query_one(SamplePane).focus()

    @work(thread=True, group="compare-session", exit_on_error=False)
    def run_process(self, jobs: GenerationJobs) -> None:
        jobs.run(lambda ready: self.post_message(ModelReady(ready, jobs.number)),
                 lambda text: self.post_message(ModelFailed(text, jobs.number)),
                 lambda number, batch: self.post_message(GenerationBatch(number, batch)))

    def shutdown(self) -> None:
        """Stop the generation process (and a running export): no orphan."""
        if self.jobs is not None:
            self.jobs.close()
        self.jobs, self.gen_job = None, None
        stop_process(self._export_proc)

    def _current_process(self, number: int) -> bool:
        return self.jobs is not None and self.jobs.number == number

    def on_model_ready(self, message: ModelReady) -> None:
        if not self._current_process(message.session):
            return
        self.session.set_ready(message.ready)
        for warning in message.ready.get("warnings") or []:
            self.notify(str(warning), severity="warning", timeout=8)
        self.activity = "ready: press h for a held-out prompt, t to type one"
        if self.session.pending:
            record, label = self.session.pending
            self.session.pending = None
            self.generate(record, label)
        self.refresh_status()

    def on_model_failed(self, message: ModelFailed) -> None:
        if not self._current_process(message.session):
            return
        self.jobs.failed()  # type: ignore[union-attr]
        self.session.ready, self.gen_job = None, None
        self.activity = "no generation process (u: pick runs to try again)"
        self.show_error(message.text)
        self.refresh_status()

    # ----------------------------------------------------------------- generating

    def generate(self, record: dict[str, Any], label: str) -> None:
        if not self.session.runs:
            self.notify("Pick a run first (u)", severity="warning")
            return
        if self.session.ready is None or self.jobs is None:
            if self.jobs is None:  # a saved comparison was shown: the model is needed now
                self.start_process()
            self.session.pending = (record, label)
            self.notify("The model is loading (or failed to): the prompt is kept for when it is ready")
            self.query_one(PromptLine).show(record, label)
            return
        self.jobs.cancel(self.gen_job)
        item = self.session.start(record, label)
        self.gen_job = self.jobs.submit("generate", self.session.request_fields(item), item)
        self.activity = "generating..."
        self.show_error("")
        self.refresh_views()

    def on_generation_batch(self, message: GenerationBatch) -> None:
        job = self.jobs.active.get(message.job) if self.jobs else None
        if job is None:
            return  # a request of a closed process
        item = job.item
        errors = self.session.take(item, message.events) if item else self.session.take_losses(message.events)
        for text in errors:
            self.show_error(text)
        end = next((e for e in message.events if e.get("finished")), None)
        if end is not None:
            self.jobs.finished(job)  # type: ignore[union-attr]
            self._finished(job, bool(end.get("cancelled")))
        if item is not None and item is self.session.current:
            self.refresh_panes()
            self.refresh_status()
        if item is None:
            self.refresh_scores()

    def _finished(self, job: Job, cancelled: bool) -> None:
        session = self.session
        if job.item is None:  # the held-out loss
            if cancelled and not session.losses:
                session.loss_note, session.loss_requested = "held-out loss cancelled", False
            return
        finished = session.finish(job.item, cancelled)
        if job is self.gen_job:
            self.gen_job = None
            self.activity = "cancelled" if cancelled else ("failed" if job.item.error else "done (n/p: samples, r: again)")
            self.refresh_status()
        if finished:
            self.score()
            if not session.loss_requested and self.jobs is not None:
                session.loss_requested, session.loss_note = True, "held-out loss: computing..."
                for fields in session.loss_requests():  # the author's held-out text, then general English
                    self.jobs.submit("eval_loss", fields)
                self.refresh_scores()

    def score(self) -> None:
        inputs = self.session.style_inputs()
        if inputs is None:
            return
        self._style_key += 1
        self.session.style_note = "scoring..."
        self.refresh_scores()
        self.run_style(*inputs, self._style_key)

    @work(thread=True, group="compare-style", exclusive=True, exit_on_error=False)
    def run_style(self, author: list[str], base: list[str], adapted: dict[str, list[str]], key: int) -> None:
        from stylelora_tui.compare.authors import style_with_authors

        try:
            self.post_message(StyleReady(style_with_authors(author, base, adapted, self.session.authors), key))
        except Exception as exc:  # noqa: BLE001 - a score must never take the screen down
            self.post_message(StyleReady(None, key, f"style score failed: {type(exc).__name__}: {exc}"))

    def on_style_ready(self, message: StyleReady) -> None:
        if message.key == self._style_key:
            self.session.set_style(message.report, message.error)
            self.refresh_scores()

    # ----------------------------------------------------------------- views

    def show_error(self, text: str) -> None:
        self.error = text
        if self.is_mounted:
            widget = self.query_one("#compare-error", Static)
            widget.update(Text(text))
            widget.set_class(bool(text), "-shown")

    def refresh_views(self) -> None:
        current = self.session.current
        record, label = (current.record, current.label) if current else self.session.pending or (None, "")
        self.query_one(PromptLine).show(record, label)
        self.refresh_status()
        self.refresh_panes()
        self.refresh_scores()

    def refresh_status(self) -> None:
        line = self.session.status_line(self.activity)
        self.query_one("#compare-status", Static).update(Text(line, overflow="ellipsis", no_wrap=True))

    def refresh_panes(self) -> None:
        waiting = "loading the model..." if self.session.ready is None and not self.error else ""
        for pane in self.query(SamplePane):
            pane.show_item(self.session.current, self.session.index, waiting)

    def refresh_scores(self) -> None:
        self.query_one(ScoreTable).show(self.session)

    # ----------------------------------------------------------------- commands (commands/compare.py)

    def _browse(self, delta: int) -> None:
        if self.session.step(delta):
            self.refresh_panes()
            self.refresh_status()

    def on_next_sample(self, _command: commands.NextSample) -> None:
        self._browse(1)

    def on_previous_sample(self, _command: commands.PreviousSample) -> None:
        self._browse(-1)

    def on_regenerate(self, _command: commands.Regenerate) -> None:
        current = self.session.current
        if current is None:
            if self.session.pending:
                self.generate(*self.session.pending)
            else:
                self.notify("No prompt yet: h picks a held-out one, t types one", severity="warning")
            return
        self.session.next_seeds()
        self.generate(current.record, current.label)

    def on_next_side(self, _command: commands.NextSide) -> None:
        shown = self.query_one(SamplePanes).next_side()
        shown.focus() if shown else self.focus_next(SamplePane)  # every side shown: v walks the panes

    def on_pick_held_out_prompt(self, _command: commands.PickHeldOutPrompt) -> None:
        records = self.session.records
        if not records:
            self.notify("This run's corpus has no held-out split (eval.jsonl): type a prompt (t)", severity="warning")
            return

        def picked(choice: str | None) -> None:
            if choice is not None and self.session.show_saved(records[int(choice)]):
                self.refresh_views()  # its saved samples; r generates it again
            elif choice is not None:
                self.generate(records[int(choice)], self.session.record_label(int(choice)))

        self.app.push_screen(ChoiceDialog("Held-out prompt (the run never trained on these)", self.session.prompt_choices()), picked)

    def on_type_prompt(self, _command: commands.TypePrompt) -> None:
        field = self.query_one("#compare-typed", Input)
        field.display = True
        field.focus()

    def on_leave_prompt(self, _command: commands.LeavePrompt) -> None:
        field = self.query_one("#compare-typed", Input)
        if field.has_focus:
            field.display = False
            self.query_one(SamplePane).focus() if self.query(SamplePane) else self.set_focus(None)

    @on(Input.Submitted, "#compare-typed")
    def _typed(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            return
        event.input.display = False
        if self.query(SamplePane):
            self.query_one(SamplePane).focus()
        self.generate({"input": text}, "typed")

    def on_sampling_settings(self, _command: commands.SamplingSettings) -> None:
        fields = [(name, label, str(self.session.settings[name])) for name, label, _ in SETTING_FIELDS]

        def chosen(values: dict[str, str] | None) -> None:
            if not values:
                return
            new, problem = parse_settings(values, self.session.settings)
            if new is None:
                self.notify(problem, severity="error", timeout=8)
                return
            changed = new != self.session.settings
            self.session.settings, self.settings_chosen = new, True
            self.refresh_status()
            if changed and self.session.current is not None:
                self.generate(self.session.current.record, self.session.current.label)

        self.app.push_screen(FieldsDialog("Sampling settings", fields, ok="Apply", note="Applying generates the prompt again."), chosen)

    def on_pick_runs(self, _command: commands.PickRuns) -> None:
        def picked(paths: list[str] | None) -> None:
            if paths and paths != [str(run.path) for run in self.session.runs]:
                self.set_runs([Run(Path(path)) for path in paths])

        self.app.push_screen(RunPicker(run_choices(self.workspace, self.session.runs)), picked)

    def on_cancel_generation(self, _command: commands.CancelGeneration) -> None:
        if self.gen_job is not None and self.jobs is not None:
            self.jobs.cancel(self.gen_job)
            self.activity = "cancelling..."
            self.refresh_status()

    # ----------------------------------------------------------------- export

    def on_export_compare(self, _command: commands.ExportCompare) -> None:
        if not self.session.runs or not self.session.has_samples():
            self.notify("Nothing to export yet: generate samples first", severity="warning")
            return
        run = self.session.runs[0]

        def chosen(request: ExportRequest | None) -> None:
            if request is not None:
                self.activity = "exporting..."
                self.refresh_status()
                self.run_export(request, run, self.session.result())

        self.app.push_screen(ExportDialog(str(run.path / "compare.html"), run.name), chosen)

    @work(thread=True, group="compare-export", exclusive=True, exit_on_error=False)
    def run_export(self, request: ExportRequest, run: Run, data: dict[str, Any]) -> None:
        def started(proc: subprocess.Popen) -> None:
            self._export_proc = proc

        result = export_compare(request, run, self.session.runs, data, lambda line: self.post_message(ExportProgress(line)), started)
        self.post_message(ExportDone(*result))

    def on_export_progress(self, message: ExportProgress) -> None:
        self.activity = f"export: {message.text}"[:80]
        self.refresh_status()

    def on_export_done(self, message: ExportDone) -> None:
        self.activity = "exported" if message.ok else "export failed"
        self.refresh_status()
        if message.html_path:
            self.notify(f"Wrote {message.html_path}", title="compare.html", timeout=10)
        if message.summary:
            self.app.push_screen(MessageDialog("Export" if message.ok else "Export failed", message.summary, error=not message.ok))
