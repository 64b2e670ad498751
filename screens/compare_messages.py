"""Messages the Compare section's workers post to its screen (thread-safe).

Candidates for ``messages.py`` once the section is wired in; kept here so this
section can land without touching files others are editing.
"""

from __future__ import annotations

from typing import Any

from textual.message import Message


class ModelReady(Message):
    """The generation process loaded the base model and the runs' adapters."""

    def __init__(self, ready: dict[str, Any], session: int) -> None:
        super().__init__()
        self.ready = ready
        self.session = session


class ModelFailed(Message):
    """The generation process could not start, or died (``text`` is for the user)."""

    def __init__(self, text: str, session: int) -> None:
        super().__init__()
        self.text = text
        self.session = session


class GenerationBatch(Message):
    """Protocol lines of one request, batched by the reader thread (a few per second)."""

    def __init__(self, job: int, events: list[dict[str, Any]]) -> None:
        super().__init__()
        self.job = job
        self.events = events


class StyleReady(Message):
    def __init__(self, report: dict[str, Any] | None, key: int, error: str = "") -> None:
        super().__init__()
        self.report = report
        self.key = key
        self.error = error


class ExportProgress(Message):
    """A line from the export subprocess; a newer one replaces a pending one."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ExportProgress)


class ExportDone(Message):
    def __init__(self, html_path: str | None, summary: str, ok: bool) -> None:
        super().__init__()
        self.html_path = html_path
        self.summary = summary
        self.ok = ok
