"""The Compare section's dialogs: pick runs, export. Typed ``ModalScreen[T]``s."""

from __future__ import annotations

from typing import Sequence

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Checkbox, Input, Label, Select, SelectionList, Static

from stylelora_tui.compare.publish import ExportRequest
from stylelora_tui.export_gguf import QUANTS
from stylelora_tui.screens.dialogs import FormDialog


class RunPicker(FormDialog["list[str] | None"]):
    """Tick runs (completed, or with a checkpoint): ``dismiss([run path, ...])`` or ``None``."""

    DEFAULT_CSS = """
    RunPicker { align: center middle; }
    RunPicker SelectionList { height: auto; max-height: 12; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "ok", "Apply", priority=True)]

    def __init__(self, choices: Sequence[tuple[str, str, bool]]) -> None:
        """``choices``: (label, run path, selected)."""
        super().__init__()
        self._choices = list(choices)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Runs to compare with the base model", classes="title")
            if self._choices:
                yield SelectionList[str](*[(label, value, on) for label, value, on in self._choices], id="run-list")
                yield Static("space ticks a run; ctrl+s applies (several runs: one column each, one base model)", classes="muted")
            else:
                yield Static("No run with an adapter or a checkpoint yet: train one in the Train section.")
            with Horizontal(classes="buttons"):
                yield Button("Apply (ctrl+s)", id="ok", variant="primary")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        if self._choices:
            self.query_one("#run-list").focus()

    def selected(self) -> list[str]:
        if not self._choices:
            return []
        chosen = set(self.query_one("#run-list", SelectionList).selected)
        return [value for _, value, _ in self._choices if value in chosen]  # in list order

    def action_ok(self) -> None:
        picked = self.selected()
        if not picked:
            self.notify("Tick at least one run (space)", severity="warning")
            return
        self.dismiss(picked)


class ExportDialog(FormDialog["ExportRequest | None"]):
    """Where to write compare.html, and whether to run ``stylelora-tui export`` after it (card, merge, GGUF, push)."""

    DEFAULT_CSS = """
    ExportDialog { align: center middle; }
    ExportDialog Checkbox { border: none; padding: 0; height: 1; }
    ExportDialog .gguf-row { height: 1; }
    ExportDialog .gguf-row Label { margin: 0 1 0 2; }
    ExportDialog #export-quant { width: 14; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "ok", "Export", priority=True)]

    def __init__(self, default_path: str, run_name: str) -> None:
        super().__init__()
        self._default, self._run = default_path, run_name

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Export", classes="title")
            yield Label("compare.html (the prompts compared here, with the style scores)")
            yield Input(self._default, id="export-path", compact=True)
            yield Label(f"Then, in a subprocess, `stylelora-tui export {self._run}`:", markup=False)
            yield Checkbox("write the model card (adapter/README.md)", id="export-card", compact=True)
            yield Checkbox("merge into a 16-bit model (--merge; slow, loads the model)", id="export-merge", compact=True)
            with Horizontal(classes="gguf-row"):
                yield Checkbox("GGUF for llama.cpp / Ollama (--gguf)", id="export-gguf", compact=True)
                yield Label("type")
                yield Select([(quant, quant) for quant in QUANTS], value=QUANTS[0], allow_blank=False, compact=True,
                             id="export-quant")
            yield Label("push to this Hub repo (blank: no push; token from HF_TOKEN or your login)")
            yield Input("", placeholder="user/name", id="export-push", compact=True)
            with Horizontal(classes="buttons"):
                yield Button("Export (ctrl+s)", id="ok", variant="primary")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#export-path").focus()

    def request(self) -> ExportRequest:
        return ExportRequest(
            path=self.query_one("#export-path", Input).value.strip(),
            card=self.query_one("#export-card", Checkbox).value,
            merge=self.query_one("#export-merge", Checkbox).value,
            push=self.query_one("#export-push", Input).value.strip(),
            gguf=self.query_one("#export-gguf", Checkbox).value,
            quant=str(self.query_one("#export-quant", Select).value),
        )

    def action_ok(self) -> None:
        request = self.request()
        problem = request.problem()
        if problem:
            self.notify(problem, severity="warning")
            return
        self.dismiss(request)
