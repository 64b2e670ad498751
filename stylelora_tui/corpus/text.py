"""Pure text handling for the corpus pipeline: cleaning, lines and paragraphs.

Sentences and passages are cut by ``corpus.passages``.

Nothing here touches files; every function takes text (or numbered lines) and
returns plain data, so the TUI can preview a split and tests can pin behaviour.

Line numbers are carried through every step so that each passage can say where
in its source file it starts ("book.txt:812").
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

# A numbered line: (1-based line number, text). ``None`` as text marks a line
# that could not be read (bad bytes); it ends the current paragraph so that text
# on either side of the hole is never glued into one sentence.
NumberedLine = tuple[int, "str | None"]

# C0 control characters other than tab/newline, plus DEL and zero-width marks:
# they never belong in prose and confuse tokenizers.
_CONTROL_CHARS = {c: None for c in range(32) if c not in (9, 10, 13)}
_CONTROL_CHARS.update({0x7F: None, 0x200B: None, 0xFEFF: None})

# --- Project Gutenberg boilerplate ---------------------------------------------------

_PG_START = re.compile(
    r"^\W*\*{2,}\s*START\s+OF\s+(THE|THIS)\s+PROJECT\s+GUTENBERG"
    r"|^\W*\*END\*\s*THE\s+SMALL\s+PRINT"  # old style: small print ends, text starts
    r"|^\W*\*{2,}\s*START\s*\**\s*OF\s+THE\s+PROJECT\s+GUTENBERG",
    re.IGNORECASE,
)
_PG_END = re.compile(
    r"^\W*\*{2,}\s*END\s+OF\s+(THE|THIS)\s+PROJECT\s+GUTENBERG"
    r"|^\s*End\s+of\s+(the\s+)?Project\s+Gutenberg"  # "End of the Project Gutenberg EBook of ..."
    r"|^\W*\*{2,}\s*START\**\s*THE\s+SMALL\s+PRINT",  # old style: small print at the end
    re.IGNORECASE,
)
# Markers are searched only near the ends of a book, so a sentence in the middle
# that happens to mention "End of Project Gutenberg" never truncates the text.
_PG_MARKER_WINDOW = 0.35

_PG_FRONT_MATTER = re.compile(
    r"^(produced\s+by|e-?text\s+prepared\s+by|this\s+e-?(book|text)\s+was\s+produced)"
    r"|^\[?\s*transcriber'?s?'?\s+notes?",
    re.IGNORECASE,
)
_BRACKETED_NOTE = re.compile(r"^\[\s*(illustration|transcriber|footnote|sidenote|note:)", re.IGNORECASE)

# Chapter and part headings: a keyword and a number ("Chapter 4", "BOOK II.",
# "Part the First"), or a front/back-matter title standing alone ("Preface.").
_NUMBER_WORDS = (
    r"\d+|[ivxlcdm]+|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|"
    r"fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|first|second|third|fourth|"
    r"fifth|sixth|seventh|eighth|ninth|tenth|last|"
    r"the\s+(first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|last)"
)
_HEADING_WORDS = re.compile(
    r"^(chapter|chap\.|book|part|volume|vol\.|section|canto|act|scene|stave)\s+(" + _NUMBER_WORDS + r")\b"
    r"|^(preface|prologue|epilogue|introduction|contents|table of contents|appendix|footnotes?|"
    r"the end|finis)\W*$",
    re.IGNORECASE,
)
_ROMAN_OR_NUMBER = re.compile(r"^[\[(]?([IVXLCDM]+|\d+)[.)\]]?$", re.IGNORECASE)
_MAX_HEADING_WORDS = 12
# Title matter in Title Case: a book's title, its byline, the entries of a table
# of contents, a story's title ("A Scandal in Bohemia"). Small words may stay lower case.
_SMALL_WORDS = frozenset("a an and as at but by for from in into nor of on or the to with".split())
_MAX_TITLE_WORDS = 10
_TITLE_PUNCTUATION = "\"'“”‘’()[]_*-—–.,:;!?"


@dataclass
class CleanStats:
    """What cleaning removed, for the report."""

    gutenberg_stripped: bool = False
    headings_dropped: int = 0
    notes_dropped: int = 0


def strip_gutenberg(lines: Sequence[NumberedLine]) -> tuple[list[NumberedLine], bool]:
    """Cut a Project Gutenberg header and licence footer, if the markers are there.

    Handles the modern ``*** START OF THE PROJECT GUTENBERG EBOOK ... ***`` /
    ``*** END OF ...`` markers and the old "small print" files. Returns the
    body and whether anything was stripped. Text without markers is unchanged.
    """
    n = len(lines)
    if n == 0:
        return list(lines), False
    window = max(60, int(n * _PG_MARKER_WINDOW))
    start = 0
    for i in range(min(n, window)):
        text = lines[i][1]
        if text is not None and _PG_START.search(text):
            start = i + 1  # the last start marker wins (old files have two)
            if text.lstrip().startswith("***") and text.count("***") == 1:
                # A long title wraps the marker: "*** START OF THIS ... SHERLOCK" / "HOLMES ***".
                for j in range(i + 1, min(i + 3, n)):
                    follow = lines[j][1]
                    if not follow or not follow.strip():
                        break
                    if follow.rstrip().endswith("***"):
                        start = j + 1
                        break
    end = n
    for i in range(max(start, n - window), n):
        text = lines[i][1]
        if text is not None and _PG_END.search(text):
            end = i
            break
    if start == 0 and end == n:
        return list(lines), False
    return list(lines[start:end]), True


# --- Paragraphs ----------------------------------------------------------------------


@dataclass
class Paragraph:
    """One paragraph: hard-wrapped lines joined, whitespace normalised."""

    text: str
    # (character offset in ``text``, source line number) for each joined line,
    # so a sentence inside the paragraph can be traced to its own line.
    line_starts: list[tuple[int, int]]
    heading: bool = False

    @property
    def line(self) -> int:
        return self.line_starts[0][1]

    def line_at(self, offset: int) -> int:
        index = bisect.bisect_right(self.line_starts, (offset, float("inf"))) - 1
        return self.line_starts[max(0, index)][1]


def normalise_line(text: str) -> str:
    """Collapse all whitespace runs (tabs, NBSP, ...) to one space and drop control characters."""
    return " ".join(text.translate(_CONTROL_CHARS).split())


def numbered_lines(text: str, first_line: int = 1) -> list[NumberedLine]:
    """Split text on any line ending (LF, CRLF, CR) into numbered lines."""
    if text.startswith("\ufeff"):
        text = text[1:]
    return [(first_line + i, line) for i, line in enumerate(text.splitlines())]


def _join_wrapped(parts: list[str], line_numbers: list[int]) -> tuple[str, list[tuple[int, int]]]:
    text = ""
    starts: list[tuple[int, int]] = []
    for part, number in zip(parts, line_numbers):
        # A word hyphenated across a line break ("well-\nknown") stays one word.
        if text and not (text.endswith("-") and not text.endswith("--") and part[:1].isalpha()):
            text += " "
        starts.append((len(text), number))
        text += part
    return text, starts


def paragraphs(lines: Iterable[NumberedLine], markdown: bool = False) -> list[Paragraph]:
    """Group numbered lines into paragraphs separated by blank (or unreadable) lines.

    With ``markdown``, ATX headings become heading paragraphs, fenced code
    blocks and horizontal rules are dropped.
    """
    result: list[Paragraph] = []
    parts: list[str] = []
    numbers: list[int] = []
    in_fence = False

    def flush() -> None:
        if parts:
            text, starts = _join_wrapped(parts, numbers)
            result.append(Paragraph(text, starts))
            parts.clear()
            numbers.clear()

    for number, raw in lines:
        if raw is None:
            flush()
            continue
        line = normalise_line(raw)
        if markdown:
            if line.startswith(("```", "~~~")):
                in_fence = not in_fence
                flush()
                continue
            if in_fence:
                continue
            if line.startswith("#") or re.fullmatch(r"([-*_]\s*){3,}", line):
                flush()
                if line.startswith("#"):
                    result.append(Paragraph(line.lstrip("#").strip(), [(0, number)], heading=True))
                continue
        if not line:
            flush()
            continue
        parts.append(line)
        numbers.append(number)
    flush()
    return result


def is_heading(text: str) -> bool:
    """A chapter heading, part title, roman numeral or all-capitals title line."""
    words = text.split()
    if not words or len(words) > _MAX_HEADING_WORDS:
        return False
    if _HEADING_WORDS.match(text) or _ROMAN_OR_NUMBER.match(text):
        return True
    letters = [c for c in text if c.isalpha()]
    # All capitals: "THE BLUE CARBUNCLE". A one-letter "I" or "A" is not a title,
    # and a shout in dialogue ('"STOP!"') is not either.
    if any(q in text for q in "\"\u201c\u201d") or text.endswith(("!", "?")):
        return False
    return len(letters) >= 2 and not any(c.islower() for c in letters)


def is_title_line(text: str) -> bool:
    """A short line in Title Case that does not end a sentence ("By Arthur Conan Doyle")."""
    words = [core for word in text.split() if (core := word.strip(_TITLE_PUNCTUATION))]
    if not words or len(words) > _MAX_TITLE_WORDS or text.rstrip().endswith(tuple(".!?…,;:\"”")):
        return False
    if not any(c.isalpha() for c in words[0]):
        words = words[1:]  # "1 The Red-headed League", "IV. The Boscombe Valley Mystery"
    return bool(words) and all(
        word[0].isupper() or word[0].isdigit() or (index > 0 and word.lower() in _SMALL_WORDS)
        for index, word in enumerate(words)
    )


def is_title_matter(para: "Paragraph") -> bool:
    """A paragraph whose every line is a title line: a title page, a byline, a table of contents."""
    bounds = [offset for offset, _ in para.line_starts] + [len(para.text)]
    lines = [para.text[a:b].strip() for a, b in zip(bounds, bounds[1:])]
    return all(is_title_line(line) for line in lines)


def clean_book(paras: list[Paragraph], stats: CleanStats) -> list[Paragraph]:
    """Mark headings (and title matter) and drop editorial notes (transcriber's notes, illustrations, "Produced by")."""
    result: list[Paragraph] = []
    in_note = False
    for index, para in enumerate(paras):
        text = para.text
        if in_note:
            stats.notes_dropped += 1
            in_note = "]" not in text
            continue
        opens_note = bool(_BRACKETED_NOTE.match(text))
        front_matter = index < 10 and bool(_PG_FRONT_MATTER.match(text))
        if opens_note or front_matter:
            stats.notes_dropped += 1
            # A bracketed note may run over several paragraphs until its "]".
            in_note = text.startswith("[") and "]" not in text
            continue
        if para.heading or is_heading(text) or is_title_matter(para):
            stats.headings_dropped += 1
            result.append(Paragraph(text, para.line_starts, heading=True))
            continue
        result.append(para)
    return result
