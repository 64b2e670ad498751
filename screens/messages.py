"""Typed messages the screens post to themselves (from workers, thread-safe)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from textual.message import Message
from textual.worker import Worker

if TYPE_CHECKING:  # types only: the screens import these modules when they need them
    from stylelora_tui.corpus.folder import Corpus
    from stylelora_tui.corpus.report import PrepareReport
    from stylelora_tui.training.estimate import Estimate

    #: An estimate, why it failed, or None when the model's shape is unknown.
    EstimateResult = Estimate | Exception | None


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

    def __init__(
        self, corpus: Corpus, report: PrepareReport, note: str,
        renderer: Callable[[dict[str, Any]], str] | None = None, render_note: str = "",
    ) -> None:
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
    """The estimate for the form's current values, and with gradient checkpointing flipped."""

    def __init__(self, estimate: EstimateResult, flipped: EstimateResult, generation: int) -> None:
        super().__init__()
        self.estimate = estimate
        self.flipped = flipped
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

    def __init__(self, config: dict[str, dict[str, Any]], config_path: Path | None, summary: str) -> None:
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


# --------------------------------------------------------------------------- every section


class WorkerFailed(Message):
    """A section's worker ended with an error: the app's one handler tells the user."""

    def __init__(self, worker: Worker[Any], section: str) -> None:
        super().__init__()
        self.worker = worker
        self.section = section
