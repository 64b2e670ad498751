"""The Compare section: the same prompt answered by the base model and by adapters, side by side.

One generation process (``stylelora_tui.generation.server`` behind ``GenerationClient``)
holds the base model once with every picked run's adapter; a session thread
owns it, sends one request at a time and posts the protocol lines back in
batches (a few redraws a second, never one per token). Widgets are touched on
the main thread only. The app process never imports torch: the process does.
Closing the screen (or the app) shuts the process down. What is compared and
computed, apart from widgets and workers, is in ``compare_model``.
"""

from __future__ import annotations

import itertools
import queue
import subprocess
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Input, Static
from textual.worker import Worker, WorkerState

from stylelora_tui.runs.run import Run
from stylelora_tui.runs.workspace import Workspace
from stylelora_tui.screens.commands import bindings
from stylelora_tui.screens.compare_dialogs import ExportDialog, ExportRequest, RunPicker
from stylelora_tui.screens.compare_model import (
    DEFAULT_SETTINGS, SETTING_FIELDS, Item, Job, compare_result, default_runs, export_compare, generate_fields,
    held_out_records, parse_settings, run_choices, score_rows, serve_jobs, status_line, stop_process, style_inputs,
)
from stylelora_tui.screens.widgets import KeyBar, TitleBar
from stylelora_tui.screens.messages import ExportDone, ExportProgress, GenerationBatch, ModelFailed, ModelReady, StyleReady
from stylelora_tui.screens.dialogs import ChoiceDialog, FieldsDialog, MessageDialog


class SamplePane(VerticalScroll):
    """One side (base or a run): the sample being looked at, streamed as it arrives."""

    def __init__(self, variant: str) -> None:
        super().__init__(classes="sample-pane" + (" base" if variant == "base" else ""))
        self.variant = variant
        self.border_title = variant if variant == "base" else f"{variant} (adapted)"
        self.text = ""
        self.body = Static("", classes="sample-text", markup=False)

    def compose(self) -> ComposeResult:
        yield self.body

    def show(self, text: str, subtitle: str, *, streaming: bool) -> None:
        self.text = text
        self.body.update(Text(text) if text else Text("(nothing yet)", style="italic"))
        self.border_subtitle = subtitle
        if streaming:
            self.scroll_end(animate=False, immediate=False)


class CompareScreen(Screen):
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
        self.runs: list[Run] = []
        self.settings = {**DEFAULT_SETTINGS, **(settings or {})}
        self.records: list[dict[str, Any]] = []
        self.record_index = 0
        self.items: list[Item] = []
        self.current: Item | None = None
        self.index = 0
        self.follow = True
        self.variants: list[str] = []
        self.ready: dict[str, Any] | None = None
        self.losses: dict[str, dict[str, Any]] = {}
        self.loss_note = ""
        self.style: dict[str, Any] | None = None
        self.style_note = "Style scores appear when the samples are done."
        self.error = ""
        self.activity = ""
        self._session = 0
        self._jobs: queue.Queue[Job | None] | None = None
        self._job_numbers = itertools.count(1)
        self._active: dict[int, Job] = {}
        self._gen_job: Job | None = None
        self._pending: tuple[dict[str, Any], str] | None = None
        self._client: Any = None
        self._closing = False
        self._loss_requested = False
        self._style_key = 0
        self._export_proc: subprocess.Popen | None = None

    # ----------------------------------------------------------------- layout

    def compose(self) -> ComposeResult:
        yield TitleBar()
        yield Static("", id="compare-prompt", markup=False)
        yield Input(placeholder="type a prompt; enter generates, esc leaves", id="compare-typed", compact=True)
        yield Static("", id="compare-status")
        yield Static("", id="compare-error", classes="problem")
        yield Horizontal(id="compare-panes")
        yield Static("", id="compare-scores")
        yield KeyBar()

    def on_mount(self) -> None:
        self.sub_title = "Compare"
        if self.workspace is None:
            self.workspace = self.app.workspace  # type: ignore[attr-defined]
        self.set_runs(self._initial_runs())

    def on_unmount(self) -> None:
        self.shutdown()

    def _initial_runs(self) -> list[Run]:
        if self.requested_runs:
            found = []
            for name in self.requested_runs:
                try:
                    found.append(self.workspace.find_run(name))
                except Exception as exc:  # noqa: BLE001 - a RunError: say it
                    self.show_error(str(exc))
            return found
        return default_runs(self.workspace)

    # ----------------------------------------------------------------- the generation session

    def set_runs(self, runs: list[Run]) -> None:
        """Compare these runs with the base: one process for all of them (started afresh)."""
        self.shutdown()
        self._closing = False
        self.runs = runs
        self.variants = ["base", *(run.name for run in runs)]
        self.items, self.current, self.index = [], None, 0
        self.ready, self.losses, self.loss_note, self.style, self._loss_requested = None, {}, "", None, False
        self.style_note = "Style scores appear when the samples are done."
        self.show_error("")
        panes = self.query_one("#compare-panes", Horizontal)
        panes.remove_children()
        if not runs:
            self.activity = ""
            panes.mount(Static("No run to compare yet: train one (Train section), then press u to pick it.", classes="muted"))
            self.refresh_status()
            self.refresh_scores()
            return
        panes.mount_all(SamplePane(variant) for variant in self.variants)
        self.records = self._held_out(runs[0])
        self.record_index = 0
        if self.records:
            self._pending = (self.records[0], self._record_label(0))
        self.refresh_prompt()
        self._session += 1
        self._jobs = queue.Queue()
        self.activity = f"loading the base model and {len(runs)} adapter{'s' if len(runs) > 1 else ''}..."
        self.refresh_status()
        self.refresh_scores()
        self.call_after_refresh(self._panes_mounted)
        self.run_session([str(run.path) for run in runs], self._session, self._jobs)

    def _panes_mounted(self) -> None:
        self.refresh_panes()
        if self.focused is None or not self.focused.is_attached:
            self.query_one(SamplePane).focus()

    def _held_out(self, run: Run) -> list[dict[str, Any]]:
        try:
            return held_out_records(run)
        except Exception as exc:  # noqa: BLE001 - a broken config or corpus: typed prompts still work
            self.notify(f"No held-out prompts: {exc}", severity="warning")
            return []

    @work(thread=True, group="compare-session", exit_on_error=False)
    def run_session(self, run_dirs: list[str], session: int, jobs: queue.Queue[Job | None]) -> None:
        from stylelora_tui.generation.client import GenerationClient, GenerationProcessError

        client = GenerationClient(run_dirs)
        if self._closing:
            return
        self._client = client
        try:
            ready = client.start()
        except (GenerationProcessError, OSError) as exc:
            self.post_message(ModelFailed(f"The generation process could not start: {exc}", session))
            return
        if self._closing:
            client.close(timeout=3)
            return
        self.post_message(ModelReady(ready, session))
        try:
            serve_jobs(client, jobs, lambda number, batch: self.post_message(GenerationBatch(number, batch)))
        except (GenerationProcessError, OSError, ValueError) as exc:
            if not self._closing:
                self.post_message(ModelFailed(f"The generation process stopped: {exc}", session))
        finally:
            client.close(timeout=3)

    def submit(self, op: str, fields: dict[str, Any], item: Item | None = None) -> Job | None:
        if self._jobs is None or self.ready is None:
            return None
        job = Job(next(self._job_numbers), op, {k: v for k, v in fields.items() if v is not None}, item=item)
        self._active[job.number] = job
        self._jobs.put(job)
        return job

    def cancel_job(self, job: Job | None) -> None:
        if job is None or job.number not in self._active:
            return
        job.cancelled = True
        if job.rid and self._client is not None:
            try:
                self._client.cancel(job.rid)
            except Exception:  # noqa: BLE001 - the process is gone: nothing to cancel
                pass

    def shutdown(self) -> None:
        """Stop the generation process (and a running export): no orphan."""
        self._closing = True
        if self._jobs is not None:
            self._jobs.put(None)
        client, self._client = self._client, None
        if client is not None:
            client.close(timeout=3)
        self._jobs, self._active, self._gen_job = None, {}, None
        stop_process(self._export_proc)

    def on_model_ready(self, message: ModelReady) -> None:
        if message.session != self._session:
            return
        self.ready = message.ready
        self.variants = list(message.ready.get("variants") or self.variants)
        for warning in message.ready.get("warnings") or []:
            self.notify(str(warning), severity="warning", timeout=8)
        self.activity = "ready: press h for a held-out prompt, t to type one"
        if self._pending:
            record, label = self._pending
            self._pending = None
            self.generate(record, label)
        self.refresh_status()

    def on_model_failed(self, message: ModelFailed) -> None:
        if message.session != self._session:
            return
        self.ready, self._jobs, self._active, self._gen_job = None, None, {}, None
        self.activity = "no generation process (u: pick runs to try again)"
        self.show_error(message.text)
        self.refresh_status()

    # ----------------------------------------------------------------- generating

    def generate(self, record: dict[str, Any], label: str) -> None:
        if not self.runs:
            self.notify("Pick a run first (u)", severity="warning")
            return
        if self.ready is None:
            self._pending = (record, label)
            self.notify("The model is still loading (or failed to): the prompt is kept for when it is ready")
            self.refresh_prompt(record, label)
            return
        self.cancel_job(self._gen_job)
        item = Item.fresh(record, label, self.settings, self.variants)
        self.items = [old for old in self.items if old.key != item.key] + [item]
        self.current, self.index, self.follow = item, 0, True
        self._gen_job = self.submit("generate", generate_fields(record, self.settings, self.variants), item)
        self.activity = "generating..."
        self.show_error("")
        self.refresh_prompt()
        self.refresh_status()
        self.refresh_panes()

    def on_generation_batch(self, message: GenerationBatch) -> None:
        job = self._active.get(message.job)
        if job is None:
            return  # a request of a closed session
        for event in message.events:
            if "error" in event:
                text = f"Generation failed: {event['error']}" if job.op == "generate" else f"Held-out loss failed: {event['error']}"
                if job.item is not None:
                    job.item.error = text
                else:
                    self.loss_note = text
                self.show_error(text)
            elif event.get("finished"):
                self._active.pop(job.number, None)
                self._finished(job, bool(event.get("cancelled")))
            elif job.op == "eval_loss" and "eval_loss" in event:
                self.losses[event["variant"]] = {k: event.get(k) for k in ("eval_loss", "perplexity", "tokens")}
            elif job.item is not None and event.get("variant") in job.item.samples:
                streamed = job.item.take(event)
                if streamed is not None and self.follow and job.item is self.current:
                    self.index = streamed
        if job.item is not None and job.item is self.current:
            self.refresh_panes()
            self.refresh_status()
        if job.op == "eval_loss":
            self.refresh_scores()

    def _finished(self, job: Job, cancelled: bool) -> None:
        if job.op == "eval_loss":
            if cancelled and not self.losses:
                self.loss_note, self._loss_requested = "held-out loss cancelled", False
            return
        item = job.item
        assert item is not None
        item.finished = not cancelled and not item.error
        if job is self._gen_job:
            self._gen_job = None
            self.activity = "cancelled" if cancelled else ("failed" if item.error else "done (n/p: samples, r: again)")
            self.refresh_status()
        if item.finished:
            self.score()
            if not self._loss_requested and self.runs:
                self._loss_requested = True
                self.loss_note = "held-out loss: computing..."
                self.submit("eval_loss", {"variants": self.variants}, None)
                self.refresh_scores()

    # ----------------------------------------------------------------- style score

    def score(self) -> None:
        inputs = style_inputs(self.items, self.records, self.variants)
        if inputs is None:
            return
        self._style_key += 1
        self.style_note = "scoring..."
        self.refresh_scores()
        self.run_style(*inputs, self._style_key)

    @work(thread=True, group="compare-style", exclusive=True, exit_on_error=False)
    def run_style(self, author: list[str], base: list[str], adapted: dict[str, list[str]], key: int) -> None:
        from stylelora_tui.compare.stylometry import style_report

        try:
            self.post_message(StyleReady(style_report(author, base, adapted), key))
        except Exception as exc:  # noqa: BLE001 - a score must never take the screen down
            self.post_message(StyleReady(None, key, f"style score failed: {type(exc).__name__}: {exc}"))

    def on_style_ready(self, message: StyleReady) -> None:
        if message.key != self._style_key:
            return
        self.style = message.report
        self.style_note = message.error or ("" if self.records else "no held-out passages of the author to score against")
        self.refresh_scores()

    # ----------------------------------------------------------------- views

    def show_error(self, text: str) -> None:
        self.error = text
        if self.is_mounted:
            widget = self.query_one("#compare-error", Static)
            widget.update(Text(text))
            widget.set_class(bool(text), "-shown")

    def _record_label(self, index: int) -> str:
        return f"held-out {index + 1}/{len(self.records)}"

    def refresh_prompt(self, record: dict[str, Any] | None = None, label: str = "") -> None:
        if record is None and self.current is not None:
            record, label = self.current.record, self.current.label
        elif record is None and self._pending:
            record, label = self._pending
        text = Text()
        if record is None:
            text.append("Prompt: ", style="bold")
            text.append("none yet (h: held-out, t: type one)")
        else:
            text.append(f"Prompt ({label}): ", style="bold")
            text.append(" ".join(str(record.get("input", "")).split()))
        self.query_one("#compare-prompt", Static).update(text)

    def refresh_status(self) -> None:
        sample = f"sample {self.index + 1}/{self._count()} · " if self.current else ""
        line = status_line(sample + self.activity, self.settings, self.ready)
        self.query_one("#compare-status", Static).update(Text(line, overflow="ellipsis", no_wrap=True))

    def refresh_panes(self) -> None:
        item = self.current
        for pane in self.query(SamplePane):
            samples = item.samples.get(pane.variant, []) if item else []
            if not samples:
                waiting = "loading the model..." if self.ready is None and not self.error else ""
                pane.show(waiting, "", streaming=False)
                continue
            i = min(self.index, len(samples) - 1)
            sample = samples[i]
            pane.show(sample.text, f"{i + 1}/{len(samples)} · seed {sample.seed} · {sample.state}",
                      streaming=not sample.done and bool(sample.text))

    def score_rows(self) -> list[tuple[str, str, str, str, str, str]]:
        return score_rows(self.style, self.variants, self.losses)

    def refresh_scores(self) -> None:
        table = Table(box=None, expand=True, padding=(0, 1), header_style="bold")
        for column in ("side", "Delta", "w/sent", "MATTR", "loss", "ppl"):  # loss, ppl: held-out (eval.jsonl)
            table.add_column(column, justify="left" if column == "side" else "right", no_wrap=True,
                             ratio=2 if column == "side" else 1, overflow="ellipsis")
        if self.runs:
            for row in self.score_rows():
                table.add_row(*row)
        head = Text((self.style or {}).get("reading") or self.style_note, style="bold")
        if self.loss_note and not self.losses:
            head.append(f"  ({self.loss_note})", style="italic")
        self.query_one("#compare-scores", Static).update(Group(head, table))

    # ----------------------------------------------------------------- actions

    def _count(self) -> int:
        return len(next(iter(self.current.samples.values()), [])) if self.current else 0

    def action_next_sample(self) -> None:
        if count := self._count():
            self.index, self.follow = (self.index + 1) % count, False
            self.refresh_panes()
            self.refresh_status()

    def action_previous_sample(self) -> None:
        if count := self._count():
            self.index, self.follow = (self.index - 1) % count, False
            self.refresh_panes()
            self.refresh_status()

    def action_regenerate(self) -> None:
        if self.current is None:
            if self._pending:
                self.generate(*self._pending)
            else:
                self.notify("No prompt yet: h picks a held-out one, t types one", severity="warning")
            return
        # New seeds, after the ones just used: a sampled run gives new text, greedy the same text.
        self.settings["seed"] = self.current.settings["seed"] + self.current.settings["n"]
        self.generate(self.current.record, self.current.label)

    def action_pick_prompt(self) -> None:
        if not self.records:
            self.notify("This run's corpus has no held-out split (eval.jsonl): type a prompt (t)", severity="warning")
            return
        choices = [(str(i), f"{i + 1}. " + " ".join(str(r.get("input", "")).split())[:90]) for i, r in enumerate(self.records)]

        def picked(choice: str | None) -> None:
            if choice is not None:
                self.record_index = int(choice)
                self.generate(self.records[self.record_index], self._record_label(self.record_index))

        self.app.push_screen(ChoiceDialog("Held-out prompt (the run never trained on these)", choices), picked)

    def action_type_prompt(self) -> None:
        field = self.query_one("#compare-typed", Input)
        field.display = True
        field.focus()

    def action_leave_prompt(self) -> None:
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

    def action_settings(self) -> None:
        fields = [(name, label, str(self.settings[name])) for name, label, _ in SETTING_FIELDS]

        def chosen(values: dict[str, str] | None) -> None:
            if not values:
                return
            new, problem = parse_settings(values, self.settings)
            if new is None:
                self.notify(problem, severity="error", timeout=8)
                return
            changed = new != self.settings
            self.settings = new
            self.refresh_status()
            if changed and self.current is not None:
                self.generate(self.current.record, self.current.label)

        self.app.push_screen(FieldsDialog("Sampling settings", fields, ok="Apply", note="Applying generates the prompt again."), chosen)

    def action_pick_runs(self) -> None:
        def picked(paths: list[str] | None) -> None:
            if paths and paths != [str(run.path) for run in self.runs]:
                self.set_runs([Run(Path(path)) for path in paths])

        self.app.push_screen(RunPicker(run_choices(self.workspace, self.runs)), picked)

    def action_cancel_generation(self) -> None:
        if self._gen_job is not None:
            self.cancel_job(self._gen_job)
            self.activity = "cancelling..."
            self.refresh_status()

    # ----------------------------------------------------------------- export

    def compare_data(self, variants: list[str] | None = None) -> dict[str, Any]:
        """What ``compare_cli`` saves as compare.json, for the prompts compared here."""
        return compare_result(self.runs[0], self.items, variants or self.variants, shown=self.variants, current=self.current,
                              settings=self.settings, ready=self.ready, style=self.style, losses=self.losses)

    def action_export(self) -> None:
        if not self.runs or not any(s.done for item in self.items for samples in item.samples.values() for s in samples):
            self.notify("Nothing to export yet: generate samples first", severity="warning")
            return
        run = self.runs[0]

        def chosen(request: ExportRequest | None) -> None:
            if request is not None:
                self.activity = "exporting..."
                self.refresh_status()
                self.run_export(request, run, self.compare_data())

        self.app.push_screen(ExportDialog(str(run.path / "compare.html"), run.name), chosen)

    @work(thread=True, group="compare-export", exclusive=True, exit_on_error=False)
    def run_export(self, request: ExportRequest, run: Run, data: dict[str, Any]) -> None:
        def started(proc: subprocess.Popen) -> None:
            self._export_proc = proc

        result = export_compare(request, run, self.runs, data, lambda line: self.post_message(ExportProgress(line)), started)
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

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and str(event.worker.group).startswith("compare-"):
            self.show_error(f"{event.worker.group[8:]} failed: {type(event.worker.error).__name__}: {event.worker.error}")
