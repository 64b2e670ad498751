"""The Compare section's widgets: a sample pane per side, the prompt line, the score table.

Each draws what a ``CompareSession`` holds; none of them computes anything.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Static

from stylelora_tui.compare.authors import author_line
from stylelora_tui.compare.forgetting import forgetting_line
from stylelora_tui.compare.session import CompareSession, Item

# loops: share of samples; loss: on the author's held-out text; general: on general English (the forgetting check)
SCORE_COLUMNS = ("side", "Delta", "w/sent", "MATTR", "loops", "loss", "general")
MIN_PANE_WIDTH = 24  # narrower than this (4+ sides at 80 columns), the adapted sides take turns in one pane


class SamplePane(VerticalScroll):
    """One side (base or a run): the sample being looked at, streamed as it arrives."""

    def __init__(self, variant: str) -> None:
        super().__init__(classes="sample-pane" + (" base" if variant == "base" else ""))
        self.variant = variant
        self.border_title = self.title_for()
        self.text = ""
        self.body = Static("", classes="sample-text", markup=False)

    def title_for(self, turn: tuple[int, int] | None = None) -> str:
        """The pane's title; ``turn`` (i, of n) when the adapted sides take turns in one pane."""
        if self.variant == "base":
            return self.variant
        return f"{turn[0]}/{turn[1]} {self.variant} (v: next)" if turn else f"{self.variant} (adapted)"  # the count survives a cut

    def compose(self) -> ComposeResult:
        yield self.body

    def show(self, text: str, subtitle: str, *, streaming: bool) -> None:
        self.text = text
        self.body.update(Text(text) if text else Text("(nothing yet)", style="italic"))
        self.border_subtitle = subtitle
        if streaming:
            self.scroll_end(animate=False, immediate=False)

    def show_item(self, item: Item | None, index: int, waiting: str) -> None:
        """Sample ``index`` of this side of ``item`` (``waiting`` when there is none yet)."""
        samples = item.samples.get(self.variant, []) if item else []
        if not samples:
            self.show(waiting, "", streaming=False)
            return
        i = min(index, len(samples) - 1)
        sample = samples[i]
        self.show(sample.text, f"{i + 1}/{len(samples)} · seed {sample.seed} · {sample.state}",
                  streaming=not sample.done and bool(sample.text))


class SamplePanes(Horizontal):
    """The sides side by side; when the window is too narrow for all, the base beside one adapted side at a time."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.shown = 0  # which adapted side is shown when they take turns
        self.cycling = False

    def on_resize(self) -> None:
        self.show_sides()

    def show_sides(self) -> None:
        panes = list(self.query(SamplePane))
        adapted = [pane for pane in panes if pane.variant != "base"]
        self.cycling = len(panes) > 2 and 0 < self.size.width < MIN_PANE_WIDTH * len(panes)
        for i, pane in enumerate(adapted):
            pane.display = not self.cycling or i == self.shown % len(adapted)
            pane.border_title = pane.title_for((i + 1, len(adapted)) if self.cycling else None)

    def next_side(self) -> SamplePane | None:
        """Show the next adapted side (when they take turns); the pane now shown, None when every side is shown."""
        if not self.cycling:
            return None
        self.shown += 1
        self.show_sides()
        return next((pane for pane in self.query(SamplePane) if pane.variant != "base" and pane.display), None)


class PromptLine(Static):
    """The prompt compared now (or the one waiting for the model)."""

    def show(self, record: dict[str, Any] | None, label: str) -> None:
        text = Text()
        if record is None:
            text.append("Prompt: ", style="bold")
            text.append("none yet (h: held-out, t: type one)")
        else:
            text.append(f"Prompt ({label}): ", style="bold")
            text.append(" ".join(str(record.get("input", "")).split()))
        self.update(text)


class ScoreTable(Static):
    """The style reading over a table of the scores (author, base, each run)."""

    def show(self, session: CompareSession) -> None:
        table = Table(box=None, expand=True, padding=(0, 1), header_style="bold")
        for column in SCORE_COLUMNS:
            table.add_column(column, justify="left" if column == "side" else "right", no_wrap=True,
                             ratio=2 if column == "side" else 1, overflow="ellipsis")
        if session.runs:
            for row in session.score_rows():
                table.add_row(*row)
        head = Text((session.style or {}).get("reading") or session.style_note, style="bold")
        if session.loss_note and not session.losses:
            head.append(f"  ({session.loss_note})", style="italic")
        report = session.forgetting()
        flagged = {name for name, side in ((report or {}).get("variants") or {}).items() if side.get("flagged")}
        named = len(session.runs) > 1
        lines = [Text(f"{run.name}: {line}" if named else line, style="bold" if run.name in flagged else "")
                 for run in session.runs if (line := forgetting_line(report, run.name))]
        lines += [Text(author_line(entry, session.variants)) for entry in (session.style or {}).get("by_author") or []]
        self.update(Group(head, table, *lines))
