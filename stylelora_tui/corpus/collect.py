"""From sources to raw passages: read every source, clean it, cut it, and keep every reject."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

from stylelora_tui.corpus.passages import RawPassage, SplitStats, split_paragraphs
from stylelora_tui.corpus.sources import (
    MAX_REJECTS_PER_SOURCE,
    Document,
    PrepareCancelled,
    Reject,
    read_dataset,
    read_file,
    scan_sources,
)
from stylelora_tui.corpus.text import CleanStats, clean_book, paragraphs, strip_gutenberg



class SplitSettings(Protocol):
    """The part of ``PrepareOptions`` that reading and splitting need."""

    min_words: int
    max_words: int
    text_column: str

    @property
    def target_words(self) -> int: ...


@dataclass
class Collected:
    """Raw passages of all sources, in source order, and what happened on the way."""

    passages: list[tuple[RawPassage, str]] = field(default_factory=list)  # (passage, source path)
    rejects: list[Reject] = field(default_factory=list)
    skipped: list[Reject] = field(default_factory=list)
    clean: CleanStats = field(default_factory=CleanStats)
    split: SplitStats = field(default_factory=SplitStats)
    gutenberg_stripped: list[str] = field(default_factory=list)
    documents: int = 0
    files_read: int = 0
    datasets_read: int = 0


def _split_document(doc: Document, settings: SplitSettings, out: Collected) -> None:
    out.documents += 1
    lines, stripped = strip_gutenberg(doc.lines)
    if stripped and doc.path not in out.gutenberg_stripped:
        out.gutenberg_stripped.append(doc.path)
    paras = paragraphs(lines, markdown=doc.kind == "markdown")
    if doc.kind != "record":
        paras = clean_book(paras, out.clean)
    before = len(out.passages)
    for raw in split_paragraphs(paras, settings.min_words, settings.max_words, settings.target_words, out.split):
        out.passages.append((raw, doc.path))
    if len(out.passages) == before:
        # A whole file (or a jsonl record meant as a passage) gave nothing: say so.
        words = sum(len(p.text.split()) for p in paras if not p.heading)
        line = doc.lines[0][0] if doc.kind == "record" and doc.lines else None
        what = "text" if doc.kind == "record" else "file"
        out.rejects.append(Reject(doc.path, line, f"{what} has no passage of at least {settings.min_words} words "
                                  f"({words} usable words)"))


def _cap_rejects(rejects: list[Reject]) -> list[Reject]:
    per_path: dict[str, int] = {}
    kept: list[Reject] = []
    for reject in rejects:
        per_path[reject.path] = per_path.get(reject.path, 0) + 1
        if per_path[reject.path] <= MAX_REJECTS_PER_SOURCE:
            kept.append(reject)
    for path, count in per_path.items():
        if count > MAX_REJECTS_PER_SOURCE:
            kept.append(Reject(path, None, f"{count - MAX_REJECTS_PER_SOURCE} more problems in this source not listed"))
    return kept


def collect(sources: list[str | Path], settings: SplitSettings, progress: Callable[[str, float], None],
            cancel: threading.Event | None) -> Collected:
    """Read and split every source. Progress runs from 0 to 0.6 (by bytes read)."""
    scan = scan_sources(list(sources))
    out = Collected(rejects=list(scan.rejects), skipped=scan.skipped)
    total = max(1, scan.total_bytes)
    done = 0
    last_reported = -1.0
    current = ""

    def on_bytes(n: int) -> None:
        nonlocal done, last_reported
        done += n
        fraction = 0.6 * done / total
        if fraction - last_reported >= 0.01:  # at most ~60 progress calls for the whole input
            last_reported = fraction
            progress(f"reading {current}", fraction)

    def split_all(documents: list[Document]) -> None:
        for doc in documents:
            if cancel is not None and cancel.is_set():
                raise PrepareCancelled("cancelled")
            _split_document(doc, settings, out)

    for path in scan.files:
        current = path.name
        progress(f"reading {current}", 0.6 * done / total)
        split_all(read_file(path, out.rejects, cancel, on_bytes))
        out.files_read += 1
    for name in scan.datasets:
        progress(f"loading dataset {name}", 0.6)
        documents = read_dataset(name, settings.text_column, out.rejects, cancel)
        out.datasets_read += 1 if documents else 0
        split_all(documents)
    out.rejects = _cap_rejects(out.rejects)
    return out
