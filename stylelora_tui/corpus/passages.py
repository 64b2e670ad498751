"""Splitting cleaned paragraphs into sentences and passages of the right length.

Passages break at paragraph boundaries first, then at sentence boundaries;
fragments too short to stand alone are merged or dropped and counted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

from stylelora_tui.corpus.text import Paragraph, numbered_lines, paragraphs


# --- Sentences -----------------------------------------------------------------------

# A sentence ends at . ! ? or an ellipsis, possibly followed by closing quotes or
# brackets, then whitespace, then something that can start a sentence.
_SENTENCE_END = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019)\]]*\s+(?=[\"'\u201c\u2018(\[\w-])")
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr st mt jr sr prof rev hon gen col capt lt sgt vs etc no vol ch pp fig e.g i.e cf approx".split()
)


def split_sentences(text: str) -> list[tuple[int, str]]:
    """Split a paragraph into sentences; returns (offset, sentence) pairs.

    A regex finds candidate boundaries (linear time, so a 10 MB line is fine);
    common abbreviations ("Mr.", "e.g.") and initials ("J. R.") do not end a sentence.
    """
    sentences: list[tuple[int, str]] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        word_start = text.rfind(" ", start, match.start()) + 1
        last_word = text[word_start : match.start()].lower().strip("\"'(\u201c\u2018")
        if last_word in _ABBREVIATIONS or (len(last_word) == 1 and last_word.isalpha() and text[match.start()] == "."):
            continue
        # '"Indeed!" he said.' is one sentence: the next one starts with a capital or digit.
        following = text[match.end() : match.end() + 4].lstrip("\"'\u201c\u2018([-")
        if following[:1].islower():
            continue
        end = match.end()
        sentences.append((start, text[start:end].rstrip()))
        start = end
    if start < len(text):
        sentences.append((start, text[start:].rstrip()))
    return [(offset, s) for offset, s in sentences if s]


# --- Passages ------------------------------------------------------------------------


@dataclass
class SplitStats:
    """What splitting did besides cutting passages, for the report."""

    fragments_merged: int = 0
    fragments_dropped: int = 0
    fragment_words_dropped: int = 0
    long_sentences_cut: int = 0


@dataclass
class RawPassage:
    text: str
    line: int
    words: int


@dataclass
class _Builder:
    min_words: int
    max_words: int
    target_words: int
    stats: SplitStats
    passages: list[RawPassage] = field(default_factory=list)
    # Pieces of the passage being built: (paragraph index, text); consecutive
    # pieces of one paragraph are joined with a space, paragraphs with a blank line.
    pieces: list[tuple[int, str]] = field(default_factory=list)
    line: int = 0
    words: int = 0

    def add(self, para_index: int, text: str, words: int, line: int) -> None:
        if not self.pieces:
            self.line = line
        self.pieces.append((para_index, text))
        self.words += words

    def _joined(self) -> str:
        out: list[str] = []
        previous = None
        for para_index, text in self.pieces:
            if previous is not None:
                out.append(" " if para_index == previous else "\n\n")
            out.append(text)
            previous = para_index
        return "".join(out)

    def flush(self) -> None:
        if not self.pieces:
            return
        if self.words >= self.min_words:
            self.passages.append(RawPassage(self._joined(), self.line, self.words))
        else:
            self.stats.fragments_dropped += 1
            self.stats.fragment_words_dropped += self.words
        self.pieces = []
        self.words = 0

    def finish(self) -> None:
        """End of a document: a short tail is merged into the previous passage if it fits."""
        if self.pieces and self.words < self.min_words and self.passages:
            last = self.passages[-1]
            if last.words + self.words <= self.max_words:
                last.text += "\n\n" + self._joined()
                last.words += self.words
                self.stats.fragments_merged += 1
                self.pieces = []
                self.words = 0
                return
        self.flush()


def _word_count(text: str) -> int:
    """Words in whitespace-normalised text (single spaces, no edges): faster than split()."""
    return text.count(" ") + 1 if text else 0


def _cut_long_sentence(sentence: str, max_words: int) -> list[str]:
    words = sentence.split()
    return [" ".join(words[i : i + max_words]) for i in range(0, len(words), max_words)]


def split_paragraphs(
    paras: Sequence[Paragraph],
    min_words: int,
    max_words: int,
    target_words: int | None = None,
    stats: SplitStats | None = None,
) -> list[RawPassage]:
    """Pack paragraphs into passages of ``min_words``..``max_words`` words.

    Whole paragraphs are packed until the passage reaches ``target_words``
    (default ``max_words``). A paragraph that does not fit is split at sentence
    boundaries; a single sentence longer than ``max_words`` is the only thing
    ever cut mid-sentence. Headings end a passage that is already long enough.
    A short tail is merged into the previous passage when it fits, else dropped;
    both are counted in ``stats``.
    """
    target = max_words if target_words is None else max(min_words, min(target_words, max_words))
    stats = stats if stats is not None else SplitStats()
    b = _Builder(min_words, max_words, target, stats)
    for index, para in enumerate(paras):
        if para.heading:
            if b.words >= min_words:
                b.flush()
            continue
        para_words = _word_count(para.text)
        if b.words + para_words <= max_words:
            b.add(index, para.text, para_words, para.line)
            if b.words >= target:
                b.flush()
            continue
        if b.words >= min_words:
            b.flush()
            if para_words <= max_words:
                b.add(index, para.text, para_words, para.line)
                if b.words >= target:
                    b.flush()
                continue
        # The paragraph has to be split: fill passages sentence by sentence.
        for offset, sentence in split_sentences(para.text):
            line = para.line_at(offset)
            chunks = [sentence]
            if _word_count(sentence) > max_words:
                chunks = _cut_long_sentence(sentence, max_words)
                stats.long_sentences_cut += 1
            for chunk in chunks:
                chunk_words = _word_count(chunk)
                if b.words + chunk_words > max_words:
                    b.flush()  # drops it as a fragment if it is still too short
                b.add(index, chunk, chunk_words, line)
                if b.words >= target:
                    b.flush()
    b.finish()
    return b.passages


def split_passages(text: str, min_words: int, max_words: int, target_words: int | None = None) -> list[str]:
    """Split plain text into passages of ``min_words``..``max_words`` words.

    Paragraphs are separated by blank lines; hard-wrapped lines inside one are
    joined; whitespace is normalised. See :func:`split_paragraphs` for the rules.
    """
    paras = paragraphs(numbered_lines(text))
    return [p.text for p in split_paragraphs(paras, min_words, max_words, target_words)]
