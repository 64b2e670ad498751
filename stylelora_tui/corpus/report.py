"""The report of a corpus preparation: counts, length distributions, what was dropped and why.

It is written as ``report.json`` in the corpus folder and read back by the TUI;
``format_text()`` is the human summary the CLI prints.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Sequence

from stylelora_tui.corpus.sources import Reject

REPORT_FORMAT_VERSION = 1
HISTOGRAM_BINS = 10
TOKENS_PER_WORD_ESTIMATE = 1.3
MAX_LISTED_DUPLICATES = 500


@dataclass
class HistogramBin:
    lo: int  # inclusive
    hi: int  # exclusive, except for the last bin, which includes the maximum
    count: int


@dataclass
class Distribution:
    """Summary of a list of per-passage lengths (words or tokens)."""

    count: int = 0
    min: int = 0
    median: float = 0.0
    p90: float = 0.0
    max: int = 0
    mean: float = 0.0
    histogram: list[HistogramBin] = field(default_factory=list)

    @classmethod
    def of(cls, values: Sequence[int], bins: int = HISTOGRAM_BINS) -> "Distribution":
        if not values:
            return cls()
        ordered = sorted(values)
        lo, hi = ordered[0], ordered[-1]
        width = max(1, math.ceil((hi - lo + 1) / bins))
        counts = [0] * bins
        for value in ordered:
            counts[min(bins - 1, (value - lo) // width)] += 1
        histogram = [HistogramBin(lo + i * width, lo + (i + 1) * width, c) for i, c in enumerate(counts)]
        # Trim empty bins past the maximum (small ranges need fewer than ``bins``).
        while len(histogram) > 1 and histogram[-1].count == 0 and histogram[-1].lo > hi:
            histogram.pop()
        return cls(len(ordered), lo, _quantile(ordered, 0.5), _quantile(ordered, 0.9), hi,
                   round(sum(ordered) / len(ordered), 1), histogram)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Distribution":
        values = {k: v for k, v in data.items() if k != "histogram"}
        return cls(**values, histogram=[HistogramBin(**b) for b in data.get("histogram", [])])


def _quantile(ordered: Sequence[int], q: float) -> float:
    """Linear-interpolated quantile of sorted values (numpy's default method)."""
    position = (len(ordered) - 1) * q
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return round(ordered[below] + (ordered[above] - ordered[below]) * (position - below), 1)


@dataclass
class PrepareReport:
    """Everything ``prepare`` did; ``passages`` and the distributions count included passages."""

    sources: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    files_read: int = 0
    datasets_read: int = 0
    documents: int = 0
    passages: int = 0
    excluded: int = 0
    total_words: int = 0
    words: Distribution = field(default_factory=Distribution)
    tokens: Distribution = field(default_factory=Distribution)
    tokens_exact: bool = False
    tokenizer: str | None = None
    tokens_note: str = ""
    exact_duplicates: int = 0
    near_duplicates: int = 0
    # Dropped duplicates: {"source", "duplicate_of" (kept id), "kept_source", "kind", "similarity"}.
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    gutenberg_stripped: list[str] = field(default_factory=list)
    headings_dropped: int = 0
    notes_dropped: int = 0
    fragments_merged: int = 0
    fragments_dropped: int = 0
    fragment_words_dropped: int = 0
    long_sentences_cut: int = 0
    min_record_words: int = 0
    too_short_for_record: int = 0
    train_records: int = 0
    eval_records: int = 0
    rejects: list[Reject] = field(default_factory=list)
    skipped_files: list[Reject] = field(default_factory=list)
    output_written: bool = False
    format_version: int = REPORT_FORMAT_VERSION

    @property
    def exit_code(self) -> int:
        """0: all used; 1: output written but something was rejected; 2: nothing usable."""
        if not self.output_written:
            return 2
        return 1 if self.rejects else 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["rejects"] = [r.to_dict() for r in self.rejects]
        data["skipped_files"] = [r.to_dict() for r in self.skipped_files]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PrepareReport":
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}  # newer keys are ignored
        for key in ("words", "tokens"):
            if key in values:
                values[key] = Distribution.from_dict(values[key])
        for key in ("rejects", "skipped_files"):
            if key in values:
                values[key] = [Reject.from_dict(r) for r in values[key]]
        return cls(**values)

    def format_text(self, max_rejects: int | None = 20) -> str:
        """A short human summary, listing up to ``max_rejects`` rejects (None: all, 0: only their count)."""
        kind = "exact" if self.tokens_exact else f"estimated at {TOKENS_PER_WORD_ESTIMATE} per word"
        lines = [
            f"Sources: {self.files_read} file(s), {self.datasets_read} dataset(s), {self.documents} document(s)",
            f"Passages: {self.passages} ({self.total_words} words)"
            + (f", {self.excluded} excluded by hand" if self.excluded else ""),
        ]
        if self.passages:
            w, t = self.words, self.tokens
            lines.append(f"  words per passage: min {w.min}, median {w.median:g}, p90 {w.p90:g}, max {w.max}")
            lines.append(f"  tokens per passage ({kind}): min {t.min}, median {t.median:g}, p90 {t.p90:g}, max {t.max}")
        if self.tokens_note:
            lines.append(f"  note: {self.tokens_note}")
        lines.append(f"Duplicates dropped: {self.exact_duplicates} exact, {self.near_duplicates} near "
                     f"(threshold {self.options.get('near_duplicate_threshold', '?')})")
        cleaned = []
        if self.gutenberg_stripped:
            cleaned.append(f"Project Gutenberg boilerplate stripped from {len(self.gutenberg_stripped)} file(s)")
        if self.headings_dropped or self.notes_dropped:
            cleaned.append(f"{self.headings_dropped} heading(s) and {self.notes_dropped} editorial note(s) removed")
        if self.fragments_merged or self.fragments_dropped:
            cleaned.append(f"{self.fragments_merged} short tail(s) merged, {self.fragments_dropped} fragment(s) "
                           f"under {self.options.get('min_words', '?')} words dropped ({self.fragment_words_dropped} words)")
        if self.long_sentences_cut:
            cleaned.append(f"{self.long_sentences_cut} sentence(s) longer than {self.options.get('max_words', '?')} words cut")
        lines.extend(f"Cleaning: {c}" for c in cleaned)
        lines.append(f"Records: {self.train_records} train, {self.eval_records} eval"
                     + (f"; {self.too_short_for_record} passage(s) under {self.min_record_words} words made no record"
                        if self.too_short_for_record else ""))
        if self.skipped_files:
            lines.append(f"Skipped: {len(self.skipped_files)} file(s) of unsupported type")
        if self.rejects:
            lines.append(f"Rejected: {len(self.rejects)} problem(s)" + ("" if max_rejects != 0 else " (listed in report.json)"))
            shown = self.rejects if max_rejects is None else self.rejects[:max_rejects]
            lines.extend(f"  {r}" for r in shown)
            if 0 < len(shown) < len(self.rejects):
                lines.append(f"  ... and {len(self.rejects) - len(shown)} more (see report.json)")
        if not self.output_written:
            lines.append("Nothing usable: no output written.")
        return "\n".join(lines)
