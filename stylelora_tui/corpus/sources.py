"""Reading corpus sources: text files, folders, style.jsonl files, Hugging Face datasets.

Every problem becomes a :class:`Reject` naming the file (and line where there is
one); reading never raises for bad input, so one bad file never costs the good
ones.

Decisions:
- Text files are read line by line as bytes and decoded as strict UTF-8. A line
  that is not valid UTF-8 is rejected (with the byte offset of the bad byte)
  and skipped; it ends the paragraph it was in, so text on either side is never
  glued together. After ``MAX_DECODE_REJECTS`` such lines in one file the rest
  are counted in one reject that suggests converting the file.
- A UTF-8 byte order mark is dropped silently; CR, LF and CRLF line ends are all
  accepted. UTF-16 files are rejected with a hint to convert them.
- A line longer than ``MAX_LINE_BYTES`` is skipped with a reject; shorter long
  lines (a 10 MB single-line book) are split at sentence boundaries later.
- Binary files (NUL bytes or mostly control characters in the first 8 KiB) are
  rejected as a whole.
"""

from __future__ import annotations

import errno
import json
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from stylelora_tui.corpus.text import NumberedLine

TEXT_SUFFIXES = frozenset({".txt", ".text", ".md", ".markdown"})
JSONL_SUFFIXES = frozenset({".jsonl"})
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | JSONL_SUFFIXES
MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})

MAX_LINE_BYTES = 64 * 1024 * 1024
MAX_DECODE_REJECTS = 20
MAX_REJECTS_PER_SOURCE = 200  # more are summarised in one line
_SNIFF_BYTES = 8192
_READ_CHUNK = 1024 * 1024

# "owner/name" or "owner/name:split", as on the Hugging Face Hub.
_DATASET_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(?::[\w.\[\]%+:-]+)?$")


class CorpusError(Exception):
    """A problem that stops the whole pipeline (bad options, unwritable output)."""


class PrepareCancelled(CorpusError):
    """The caller set the cancel event; nothing was written."""


@dataclass(frozen=True)
class Reject:
    """Something that could not be used, and where it is."""

    path: str
    line: int | None
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}" if self.line is not None else f"{self.path}: {self.reason}"

    def to_dict(self) -> dict:
        return {"path": self.path, "line": self.line, "reason": self.reason}

    @classmethod
    def from_dict(cls, data: dict) -> "Reject":
        return cls(str(data["path"]), data.get("line"), str(data["reason"]))


@dataclass
class Document:
    """A unit of text to split: a whole file, one jsonl record or one dataset row.

    ``kind`` is "book" (cleaned: Gutenberg boilerplate, headings, notes),
    "markdown" (a book with Markdown headings) or "record" (a prepared passage
    from a jsonl file or dataset row, only whitespace-normalised).
    """

    path: str
    lines: list[NumberedLine]
    kind: str


@dataclass
class SourceScan:
    """What a list of sources expands to, before anything is read."""

    files: list[Path] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    skipped: list[Reject] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        total = 0
        for path in self.files:
            try:
                total += path.stat().st_size
            except OSError:
                pass  # reading it will report the problem
        return total


def looks_like_dataset(name: str) -> bool:
    suffix = os.path.splitext(name.split(":", 1)[0])[1].lower()
    return bool(_DATASET_NAME.match(name)) and suffix not in SUPPORTED_SUFFIXES


def _walk_folder(root: Path) -> Iterator[tuple[Path, str | None]]:
    """(file, None) for each visible file under ``root``, in order; (path, why) for a link skipped.

    Symbolic links are followed (a folder of links to books is common), but a
    link back into a folder already being read, a link to itself, a broken
    link, or a second link to a file already found is skipped and named, so a
    loop neither hangs the walk nor disappears without a word.
    """
    seen_dirs: dict[tuple[int, int], Path] = {}
    seen_files: dict[tuple[int, int], Path] = {}

    def walk(folder: Path) -> Iterator[tuple[Path, str | None]]:
        stat = folder.stat()
        seen_dirs[(stat.st_dev, stat.st_ino)] = folder
        for child in sorted(folder.iterdir()):
            if child.name.startswith("."):
                continue
            try:
                stat = child.stat()  # follows links
            except OSError as error:
                if child.is_symlink():
                    target = os.readlink(child)
                    loop = error.errno == errno.ELOOP
                    yield child, ("symbolic link loop" if loop else f"broken symbolic link to {target}")
                else:
                    yield child, f"cannot read: {error.strerror or error}"
                continue
            key = (stat.st_dev, stat.st_ino)
            if child.is_dir():
                if key in seen_dirs:
                    yield child, f"symbolic link loop (points back to {seen_dirs[key]})"
                else:
                    yield from walk(child)
            elif child.is_file():
                if key in seen_files:
                    yield child, f"same file as {seen_files[key]}"
                else:
                    seen_files[key] = child
                    yield child, None

    yield from walk(root)


def scan_sources(sources: list[str | Path]) -> SourceScan:
    """Expand folders (recursively, skipping hidden entries) and classify each source."""
    scan = SourceScan()
    for source in sources:
        path = Path(source).expanduser()
        name = str(source)
        if path.is_dir():
            found = 0
            for child, why in _walk_folder(path):
                if why:
                    scan.skipped.append(Reject(str(child), None, f"skipped: {why}"))
                elif child.suffix.lower() in SUPPORTED_SUFFIXES:
                    scan.files.append(child)
                    found += 1
                else:
                    scan.skipped.append(Reject(str(child), None, f"skipped: unsupported file type '{child.suffix or child.name}'"))
            if not found:
                scan.rejects.append(Reject(name, None, "empty folder: no .txt, .md or .jsonl files in it"))
        elif path.is_file():
            scan.files.append(path)  # named explicitly: read as text whatever its extension
        elif path.exists():
            scan.rejects.append(Reject(name, None, "not a regular file or folder"))
        elif looks_like_dataset(name):
            scan.datasets.append(name)
        else:
            scan.rejects.append(Reject(name, None, "no such file or folder"))
    return scan


def _sniff_binary(head: bytes) -> str | None:
    """A reason the file is not text, or None."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "UTF-16 text is not supported; save the file as UTF-8"
    if b"\x00" in head:
        return "binary file (contains NUL bytes)"
    if head:
        control = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13))
        if control / len(head) > 0.1:
            return "binary file (mostly control characters)"
    return None


def _read_lines(path: Path, rejects: list[Reject], cancel: threading.Event | None,
                on_bytes: Callable[[int], None]) -> list[NumberedLine] | None:
    """Decode a file into numbered lines; None if the file cannot be used at all."""
    name = str(path)
    try:
        handle = path.open("rb")
    except OSError as error:
        rejects.append(Reject(name, None, f"cannot read: {error.strerror or error}"))
        return None
    lines: list[NumberedLine] = []
    with handle:
        head = handle.read(_SNIFF_BYTES)
        why = _sniff_binary(head)
        if why:
            rejects.append(Reject(name, None, why))
            return None
        handle.seek(0)
        offset = 0
        number = 0
        bad_lines = 0
        while True:
            if cancel is not None and cancel.is_set():
                raise PrepareCancelled("cancelled")
            raw = handle.readline(MAX_LINE_BYTES + 1)
            if not raw:
                break
            number += 1
            line_offset = offset
            offset += len(raw)
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                # Skip the rest of the giant line without holding it in memory.
                while raw and not raw.endswith(b"\n"):
                    raw = handle.readline(_READ_CHUNK)
                    offset += len(raw)
                rejects.append(Reject(name, number, f"line longer than {MAX_LINE_BYTES // (1024 * 1024)} MiB; skipped"))
                lines.append((number, None))
                continue
            on_bytes(len(raw))
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
                line_offset += 3
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                bad_lines += 1
                if bad_lines <= MAX_DECODE_REJECTS:
                    rejects.append(Reject(name, number, f"invalid UTF-8 at byte {line_offset + error.start} "
                                          f"(0x{raw[error.start]:02x}); line skipped"))
                lines.append((number, None))
                continue
            # Lines end in LF or CRLF; a bare CR (old Mac files) splits further.
            parts = text.rstrip("\r\n").split("\r")
            lines.append((number, parts[0]))
            lines.extend((number, part) for part in parts[1:])
        if bad_lines > MAX_DECODE_REJECTS:
            rejects.append(Reject(name, None, f"{bad_lines - MAX_DECODE_REJECTS} more lines with invalid UTF-8 skipped; "
                                  "if the file is Latin-1, convert it: iconv -f latin1 -t utf-8"))
    return lines


def _record_text(obj: object) -> tuple[str | None, str | None]:
    """(text, None) or (None, reason) for one parsed jsonl line or dataset row."""
    if not isinstance(obj, dict):
        return None, f'expected a JSON object with a "text" string, got {type(obj).__name__}'
    if "text" not in obj:
        keys = ", ".join(sorted(map(str, obj))[:8]) or "none"
        return None, f'missing "text" field (keys: {keys})'
    text = obj["text"]
    if not isinstance(text, str):
        kind = "null" if text is None else type(text).__name__
        return None, f'"text" is {kind}, not a string'
    if not text.strip():
        return None, '"text" is empty'
    return text, None


def _jsonl_documents(path: Path, lines: list[NumberedLine], rejects: list[Reject]) -> Iterator[Document]:
    name = str(path)
    for number, line in lines:
        if line is None or not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as error:
            rejects.append(Reject(name, number, f"invalid JSON: {error.msg} at column {error.colno}"))
            continue
        text, why = _record_text(obj)
        if text is None:
            rejects.append(Reject(name, number, str(why)))
            continue
        # Every line of the text carries the jsonl line it came from.
        yield Document(name, [(number, part) for part in text.splitlines()], "record")


def read_file(path: Path, rejects: list[Reject], cancel: threading.Event | None = None,
              on_bytes: Callable[[int], None] = lambda n: None) -> list[Document]:
    """Documents of one file; problems go to ``rejects``."""
    lines = _read_lines(path, rejects, cancel, on_bytes)
    if lines is None:
        return []
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return list(_jsonl_documents(path, lines, rejects))
    return [Document(str(path), lines, "markdown" if suffix in MARKDOWN_SUFFIXES else "book")]


def read_dataset(name: str, text_column: str, rejects: list[Reject],
                 cancel: threading.Event | None = None) -> list[Document]:
    """Rows of a Hugging Face dataset ``owner/name[:split]``, one document per row."""
    dataset_name, _, split = name.partition(":")
    split = split or "train"
    try:
        import datasets  # lazy: heavy, and only needed for Hub sources
    except ImportError as error:
        rejects.append(Reject(name, None, f"could not load dataset {name}: the datasets package is missing ({error})"))
        return []
    try:
        table = datasets.load_dataset(dataset_name, split=split)
    except Exception as error:  # noqa: BLE001 - network, auth, missing split...: all reported, none fatal
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        rejects.append(Reject(name, None, f"could not load dataset {name}: {reason}"))
        return []
    columns = list(getattr(table, "column_names", None) or [])
    if columns and text_column not in columns:
        rejects.append(Reject(name, None, f"dataset has no column '{text_column}' (columns: {', '.join(columns)}); "
                              "choose one with --text-column"))
        return []
    documents: list[Document] = []
    for row_number, row in enumerate(table, start=1):
        if cancel is not None and cancel.is_set():
            raise PrepareCancelled("cancelled")
        if not isinstance(row, dict):
            text, why = None, f"expected a row with a '{text_column}' column, got {type(row).__name__}"
        elif text_column not in row:
            text, why = None, f"row has no '{text_column}' column"
        else:
            text, why = _record_text({"text": row[text_column]})
            why = why and why.replace('"text"', f"'{text_column}'")
        if text is None:
            rejects.append(Reject(name, row_number, str(why)))
            continue
        documents.append(Document(name, [(row_number, part) for part in text.splitlines()], "book"))
    return documents
