"""Typed messages the screens post to themselves (from workers, thread-safe)."""

from __future__ import annotations

from typing import Any

from textual.message import Message


class ImportProgress(Message):
    """A step of a running import; a newer one replaces a pending one."""

    def __init__(self, text: str, fraction: float | None) -> None:
        super().__init__()
        self.text = text
        self.fraction = fraction

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ImportProgress)


class ImportFinished(Message):
    """An import or re-chunk ended; ``corpus`` is the freshly loaded corpus."""

    def __init__(self, corpus: Any, report: Any, note: str, renderer: Any = None, render_note: str = "") -> None:
        super().__init__()
        self.renderer = renderer
        self.render_note = render_note
        self.corpus = corpus
        self.report = report
        self.note = note


class ImportFailed(Message):
    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class EstimateReady(Message):
    """The estimate for the form's current values (None: no shape known)."""

    def __init__(self, estimate: Any, verdicts: Any, generation: int) -> None:
        super().__init__()
        self.estimate = estimate
        self.verdicts = verdicts
        self.generation = generation
