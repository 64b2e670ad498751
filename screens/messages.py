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


class RunActionDone(Message):
    """A run action (launch, stop, resume, delete) finished in a worker."""

    def __init__(self, text: str, *, error: bool = False, select: str | None = None, title: str = "") -> None:
        super().__init__()
        self.text = text
        self.error = error
        self.select = select
        self.title = title


class LaunchReady(Message):
    """The launch summary for the confirm dialog, computed off the UI thread."""

    def __init__(self, config: Any, config_path: Any, summary: str) -> None:
        super().__init__()
        self.config = config
        self.config_path = config_path
        self.summary = summary


class MemoryHint(Message):
    """The memory estimate of a failed run's config, shown beside the OOM hint."""

    def __init__(self, name: str, text: str) -> None:
        super().__init__()
        self.name = name
        self.text = text


# --------------------------------------------------------------------------- Compare section


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
