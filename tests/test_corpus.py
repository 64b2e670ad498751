"""The corpus pipeline: splitting, cleaning, dedup, records, bad input, and the corpus folder."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
import threading
import time
import types
from pathlib import Path

import pytest

from stylelora_tui.corpus import sources as corpus_sources
from stylelora_tui.corpus.pipeline import (
    CorpusError,
    PrepareCancelled,
    PrepareOptions,
    PrepareReport,
    load_corpus,
    passage_to_record,
    prepare,
    rechunk,
    set_excluded,
    split_passages,
)
from stylelora_tui.corpus.dedup import find_duplicates
from stylelora_tui.corpus.passages import split_sentences
from stylelora_tui.corpus.text import is_heading, numbered_lines, paragraphs, strip_gutenberg

# --- helpers -------------------------------------------------------------------------

_VOCAB_RNG = random.Random(99)
_VOCAB = ["".join(_VOCAB_RNG.choices("abcdefghijklmnoprstuvwy", k=_VOCAB_RNG.randint(2, 9))) for _ in range(4000)]


def sentence(rng: random.Random, words: int | None = None) -> str:
    chosen = rng.choices(_VOCAB, k=words or rng.randint(6, 18))
    return chosen[0].capitalize() + " " + " ".join(chosen[1:]) + "."


def paragraph(rng: random.Random, words: int) -> str:
    """Sentences totalling exactly ``words`` words."""
    out, left = [], words
    while left:
        n = min(left, rng.randint(6, 18))
        if 0 < left - n < 3:
            n = left
        out.append(sentence(rng, n))
        left -= n
    return " ".join(out)


def book(rng: random.Random, paragraph_words: list[int]) -> str:
    return "\n\n".join(paragraph(rng, n) for n in paragraph_words)


def wc(text: str) -> int:
    return len(text.split())


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def reasons(report: PrepareReport) -> list[str]:
    return [str(r) for r in report.rejects]


@pytest.fixture
def rng() -> random.Random:
    return random.Random(1234)


@pytest.fixture
def good_jsonl(tmp_path: Path, rng: random.Random) -> tuple[Path, list[str]]:
    texts = [paragraph(rng, 260) for _ in range(4)]
    return write_jsonl(tmp_path / "good.jsonl", [{"text": t} for t in texts]), texts


# --- splitting -----------------------------------------------------------------------


def test_passages_respect_bounds_and_paragraph_boundaries(rng):
    sizes = [rng.randint(20, 120) for _ in range(60)]
    text = book(rng, sizes)
    paras = text.split("\n\n")
    passages = split_passages(text, 100, 500)
    assert passages
    assert all(100 <= wc(p) <= 500 for p in passages)
    # Every paragraph fits whole, so each passage is a run of whole paragraphs.
    for passage in passages:
        assert all(part in paras for part in passage.split("\n\n"))
    # Nothing is lost except possibly a dropped tail: the text is a concatenation.
    assert "\n\n".join(passages) in text or wc(" ".join(passages)) >= wc(text) - 100


def test_target_words_gives_shorter_passages(rng):
    text = book(rng, [40] * 50)
    long = split_passages(text, 100, 500)
    short = split_passages(text, 100, 500, target_words=250)
    # Whole 40-word paragraphs until 250 is reached (the last passage may hold a merged tail).
    assert all(250 <= wc(p) < 290 for p in short[:-1])
    assert all(wc(p) > 450 for p in long[:-1])
    assert len(short) > len(long)


def test_long_paragraph_split_at_sentence_boundaries(rng):
    text = paragraph(rng, 1800)
    sentences = {s for _, s in split_sentences(text)}
    passages = split_passages(text, 100, 500)
    assert len(passages) >= 4
    for passage in passages:
        assert 100 <= wc(passage) <= 500
        # Rebuilt from whole sentences: each piece ends in a full stop and is a sentence of the text.
        assert passage.endswith(".")
    joined = " ".join(passages)
    assert sum(1 for s in sentences if s in joined) == len(sentences)


def test_single_sentence_longer_than_max_is_cut_and_counted():
    words = [f"w{i}" for i in range(1234)]
    text = " ".join(words) + "."
    passages = split_passages(text, 100, 500)
    assert [wc(p) for p in passages] == [500, 500, 234]
    assert " ".join(passages).split() == text.split()


def test_whitespace_normalised_and_hard_wraps_joined():
    raw = "The  first\tline of a\r\nwrapped paragraph, well-\r\nknown   text.\r\n\r\n\r\nSecond\u00a0paragraph here.\r\n"
    paras = paragraphs(numbered_lines(raw))
    assert [p.text for p in paras] == ["The first line of a wrapped paragraph, well-known text.", "Second paragraph here."]
    assert [p.line for p in paras] == [1, 6]
    assert paras[0].line_at(paras[0].text.index("well")) == 2


def test_short_tail_merged_or_dropped(rng):
    merged = split_passages(paragraph(rng, 150) + "\n\n" + paragraph(rng, 30), 100, 500)
    assert [wc(p) for p in merged] == [180]
    # The tail cannot merge without passing max_words: it is dropped.
    dropped = split_passages(paragraph(rng, 480) + "\n\n" + paragraph(rng, 30), 100, 500)
    assert [wc(p) for p in dropped] == [480]


def test_sentence_splitter_keeps_abbreviations():
    text = 'Mr. Holmes met Dr. Watson at St. Paul\'s. "Indeed!" he said. It was late... Then J. R. left.'
    assert [s for _, s in split_sentences(text)] == [
        "Mr. Holmes met Dr. Watson at St. Paul's.", '"Indeed!" he said.', "It was late...", "Then J. R. left.",
    ]


# --- Project Gutenberg and other cleaning --------------------------------------------


def _gutenberg(body: str) -> str:
    return (
        "The Project Gutenberg eBook of Test Book, by A. Writer\n\n"
        "This eBook is for the use of anyone anywhere in the United States and\n"
        "most other parts of the world at no cost and with almost no restrictions\n\n"
        "*** START OF THE PROJECT GUTENBERG EBOOK TEST BOOK ***\n\n"
        "Produced by Volunteer Proofreaders at the Distributed Team\n\n"
        "[Transcriber's Note: Obvious typographical errors have\n\nbeen corrected silently.]\n\n"
        f"{body}\n\n"
        "*** END OF THE PROJECT GUTENBERG EBOOK TEST BOOK ***\n\n"
        "Updated editions will replace the previous one--the old editions will\n"
        "be renamed. START: FULL LICENSE. THE FULL PROJECT GUTENBERG LICENSE\n"
    )


def test_gutenberg_boilerplate_headings_and_notes_removed(tmp_path, rng):
    chapters = []
    for number in ("I", "II", "III"):
        chapters.append(f"CHAPTER {number}.\nTHE WIDE SEA")
        chapters.append(book(rng, [90, 110, 70]))
    body = "\n\n".join(chapters)
    path = tmp_path / "pg1234.txt"
    path.write_text(_gutenberg(body), encoding="utf-8")
    report = prepare([path], tmp_path / "out", PrepareOptions(min_words=100, max_words=500))
    text = "\n".join(r["text"] for r in read_jsonl(tmp_path / "out" / "style.jsonl"))
    for boilerplate in ("Gutenberg", "eBook", "Produced by", "Transcriber", "corrected silently", "LICENSE",
                        "CHAPTER", "WIDE SEA"):
        assert boilerplate not in text
    assert report.gutenberg_stripped == [str(path)]
    assert report.headings_dropped == 3
    assert report.notes_dropped == 3  # "Produced by" and the two-paragraph note
    # Every body word survives (all paragraphs fit in passages here).
    body_words = [w for chunk in chapters[1::2] for w in chunk.split()]
    assert text.split() == body_words


def test_title_page_contents_and_wrapped_marker_removed(tmp_path, rng):
    """The shape of a real Gutenberg collection (pg1661): a start marker wrapped over two
    lines, a title page, a byline, an indented table of contents, then titled stories."""
    story_one, story_two = book(rng, [120, 90]), book(rng, [110])
    text = (
        "                   The Adventures of Sherlock Holmes\n\n\n"
        "Title: The Adventures of Sherlock Holmes\n\nAuthor: Arthur Conan Doyle\n\n"
        "*** START OF THIS PROJECT GUTENBERG EBOOK THE ADVENTURES OF SHERLOCK\nHOLMES ***\n\n\n\n"
        "                   The Adventures of Sherlock Holmes\n\n                         By Arthur Conan Doyle\n\n\n"
        "Contents\n\n   A Scandal in Bohemia\n   The Red-headed League\n   IV. The Boscombe Valley Mystery\n"
        "   The Adventure of the Engineer\u2019s Thumb\n\n\n"
        f"A Scandal in Bohemia\n\n\nI.\n\n\n{story_one}\n\n\nThe Red-headed League\n\n\n{story_two}\n\n"
        "*** END OF THIS PROJECT GUTENBERG EBOOK THE ADVENTURES OF SHERLOCK\nHOLMES ***\n\nLicence text follows.\n"
    )
    path = tmp_path / "pg1661.txt"
    path.write_text(text, encoding="utf-8")
    report = prepare([path], tmp_path / "out", PrepareOptions(min_words=60, max_words=500))
    passages = [r["text"] for r in read_jsonl(tmp_path / "out" / "style.jsonl")]
    assert " ".join(passages).split() == (story_one + " " + story_two).split()  # only the stories' prose
    assert report.headings_dropped == 7  # title, byline, Contents, its entries, two story titles, "I."


def test_title_lines_are_not_prose():
    from stylelora_tui.corpus.text import is_title_line

    for title in ("By Arthur Conan Doyle", "A Scandal in Bohemia", "The Adventure of the Engineer\u2019s Thumb",
                  "IV. The Boscombe Valley Mystery", "The Red-headed League"):
        assert is_title_line(title), title
    for prose in ("My dear Watson", "Thanks for reading", "Yes.", "\u201cQuite so!\u201d", "Dear Sir,",
                  "The lamp burned low", "It was late, and the tide was turning"):
        assert not is_title_line(prose), prose


@pytest.mark.parametrize("text, heading", [
    ("CHAPTER IV", True), ("Chapter 4. The Duel", True), ("BOOK II.", True), ("Part the First", True),
    ("Preface.", True), ("THE END", True), ("XIV", True), ("THE BLUE CARBUNCLE", True),
    ("Part of the problem was that he left.", False), ("The end of the day came.", False),
    ("Act the fool, she said.", False), ('"STOP!"', False), ("I went home.", False), ("A", False),
])
def test_heading_detection(text, heading):
    assert is_heading(text) is heading


def test_old_style_small_print_stripped():
    lines = numbered_lines(
        "**The Project Gutenberg Etext of Old Book**\nlegal text\n"
        "*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*Ver.04.29.93*END*\n\nReal first line.\nReal last line.\n\n"
        "End of the Project Gutenberg EBook of Old Book\n\n***START**THE SMALL PRINT!**FOR PUBLIC DOMAIN EBOOKS\n"
    )
    body, stripped = strip_gutenberg(lines)
    assert stripped
    assert [t for _, t in body if t] == ["Real first line.", "Real last line."]
    assert body[0][0] == 4  # line numbers are those of the original file


def test_text_without_markers_untouched():
    lines = numbered_lines("Plain line.\n" * 100 + "End of Project Gutenberg texts is a topic here.\n" + "Plain line.\n" * 100)
    body, stripped = strip_gutenberg(lines)
    # Markers only count near the start or end of a file, so a mention mid-book changes nothing.
    assert not stripped and body == lines


def test_markdown_headings_and_code_dropped(tmp_path, rng):
    text = paragraph(rng, 120)
    path = tmp_path / "post.md"
    path.write_text(f"# My Post\n\n{text}\n\n```python\nprint('code')\n```\n\n---\n\n## End\n", encoding="utf-8")
    prepare([path], tmp_path / "out")
    assert [r["text"] for r in read_jsonl(tmp_path / "out" / "style.jsonl")] == [text]


def test_source_line_points_at_passage_start(tmp_path, rng):
    paras = [paragraph(rng, 160) for _ in range(4)]
    path = tmp_path / "book.txt"
    path.write_text("\n\n\n".join(paras), encoding="utf-8")
    prepare([path], tmp_path / "out", PrepareOptions(min_words=100, max_words=200))
    file_lines = path.read_text(encoding="utf-8").splitlines()
    rows = read_jsonl(tmp_path / "out" / "style.jsonl")
    assert len(rows) == 4
    for row in rows:
        where, line = row["source"].rsplit(":", 1)
        assert where == str(path)
        assert file_lines[int(line) - 1].startswith(" ".join(row["text"].split()[:5]))


# --- duplicates ----------------------------------------------------------------------


def test_exact_and_near_duplicates_dropped(tmp_path, rng):
    base = paragraph(rng, 200)
    words = base.split()
    words[100] = "zzzchanged"
    near = " ".join(words)
    exact = "  " + base.upper().replace(" ", "   ") + " "  # same after whitespace and case normalisation
    other = paragraph(rng, 200)
    path = write_jsonl(tmp_path / "dups.jsonl", [{"text": t} for t in (base, exact, other, near)])
    report = prepare([path], tmp_path / "out")
    kept = [r["text"] for r in read_jsonl(tmp_path / "out" / "style.jsonl")]
    assert kept == [base, other]
    assert (report.exact_duplicates, report.near_duplicates) == (1, 1)
    kinds = {d["source"]: (d["kind"], d["kept_source"]) for d in report.duplicates}
    assert kinds == {f"{path}:2": ("exact", f"{path}:1"), f"{path}:4": ("near", f"{path}:1")}
    # A threshold above 1 keeps near duplicates.
    report = prepare([path], tmp_path / "out2", PrepareOptions(near_duplicate_threshold=1.01))
    assert (report.exact_duplicates, report.near_duplicates, report.passages) == (1, 0, 3)


def test_near_duplicate_threshold_is_respected(rng):
    base = paragraph(rng, 300).split()
    variant = list(base)
    for i in range(0, 300, 15):  # 20 edits: Jaccard of 5-grams well below 0.9, above 0.3
        variant[i] = "qq"
    texts = [" ".join(base), " ".join(variant)]
    assert find_duplicates(texts, 0.9) == []
    assert [d.kind for d in find_duplicates(texts, 0.3)] == ["near"]


def test_dedup_is_fast_on_thousands_of_passages(rng):
    texts = [paragraph(rng, 250) for _ in range(3000)]
    texts.append(texts[10])
    started = time.perf_counter()
    duplicates = find_duplicates(texts, 0.9)
    assert time.perf_counter() - started < 5
    assert [(d.index, d.kept_index) for d in duplicates] == [(3000, 10)]


# --- records and the eval split ------------------------------------------------------


def test_record_word_counts_and_paragraph_breaks(rng):
    text = paragraph(rng, 30) + "\n\n" + paragraph(rng, 300)
    record = passage_to_record(text)
    assert record is not None
    assert record["instruction"] == "Continue in the author's style:"
    assert wc(record["input"]) == 50 and wc(record["output"]) == 200
    assert "\n\n" in record["input"]
    assert (record["input"] + " " + record["output"]).split() == text.split()[:250]


def test_record_short_output_allowed_down_to_minimum(rng):
    options = PrepareOptions(input_words=50, output_words=200)
    assert wc(passage_to_record(paragraph(rng, 120), options)["output"]) == 70
    assert passage_to_record(paragraph(rng, 100), options) is not None
    assert passage_to_record(paragraph(rng, 99), options) is None
    small = PrepareOptions(input_words=10, output_words=20)
    assert wc(passage_to_record(paragraph(rng, 30), small)["output"]) == 20
    assert passage_to_record(paragraph(rng, 29), small) is None


def test_too_short_passages_counted_not_recorded(tmp_path, rng):
    path = write_jsonl(tmp_path / "c.jsonl", [{"text": paragraph(rng, n)} for n in (80, 150, 90, 200)])
    report = prepare([path], tmp_path / "out", PrepareOptions(min_words=60))
    assert report.passages == 4
    assert report.too_short_for_record == 2
    assert report.train_records + report.eval_records == 2


def test_eval_split_deterministic_and_disjoint(tmp_path, rng):
    path = write_jsonl(tmp_path / "c.jsonl", [{"text": paragraph(rng, 150)} for _ in range(40)])

    def split(seed: int, out: str) -> tuple[set, set]:
        prepare([path], tmp_path / out, PrepareOptions(seed=seed, eval_fraction=0.25))
        train = {r["id"] for r in read_jsonl(tmp_path / out / "train.jsonl")}
        held = {r["id"] for r in read_jsonl(tmp_path / out / "eval.jsonl")}
        return train, held

    train, held = split(7, "a")
    assert len(held) == 10 and len(train) == 30 and not train & held
    assert split(7, "b") == (train, held)
    assert split(8, "c")[1] != held


def test_eval_split_small_corpora(tmp_path, rng):
    two = write_jsonl(tmp_path / "two.jsonl", [{"text": paragraph(rng, 150)} for _ in range(2)])
    report = prepare([two], tmp_path / "a")
    assert (report.train_records, report.eval_records) == (1, 1)
    one = write_jsonl(tmp_path / "one.jsonl", [{"text": paragraph(rng, 150)}])
    report = prepare([one], tmp_path / "b")
    assert (report.train_records, report.eval_records) == (1, 0)
    report = prepare([two], tmp_path / "c", PrepareOptions(eval_fraction=0))
    assert (report.train_records, report.eval_records) == (2, 0)


# --- bad input -----------------------------------------------------------------------


def test_bad_jsonl_lines_rejected_with_line_good_kept(tmp_path, rng):
    good = [paragraph(rng, 150) for _ in range(3)]
    path = write_jsonl(tmp_path / "mixed.jsonl", [
        {"text": good[0]},
        '{"text": "unterminated',
        {"body": "no text key"},
        {"text": ""},
        {"text": 42},
        {"text": None},
        "[1, 2]",
        {"text": good[1]},
        "",
        {"text": "   "},
        {"text": good[2]},
    ])
    report = prepare([path], tmp_path / "out")
    got = reasons(report)
    assert got == [
        f"{path}:2: invalid JSON: Unterminated string starting at at column 10",
        f'{path}:3: missing "text" field (keys: body)',
        f'{path}:4: "text" is empty',
        f'{path}:5: "text" is int, not a string',
        f'{path}:6: "text" is null, not a string',
        f'{path}:7: expected a JSON object with a "text" string, got list',
        f'{path}:10: "text" is empty',
    ]
    assert [r["text"] for r in read_jsonl(tmp_path / "out" / "style.jsonl")] == good
    assert [r["source"] for r in read_jsonl(tmp_path / "out" / "style.jsonl")] == [f"{path}:1", f"{path}:8", f"{path}:11"]


def test_short_jsonl_text_rejected(tmp_path, rng, good_jsonl):
    path = write_jsonl(tmp_path / "short.jsonl", [{"text": "Only a few words here."}])
    report = prepare([path, good_jsonl[0]], tmp_path / "out")
    assert reasons(report) == [f"{path}:1: text has no passage of at least 100 words (5 usable words)"]
    assert report.passages == 4


def test_invalid_utf8_rejected_with_offset(tmp_path, rng, good_jsonl):
    first, second = paragraph(rng, 150), paragraph(rng, 150)
    txt = tmp_path / "latin.txt"
    txt.write_bytes(first.encode() + b"\n\nCaf\xe9 au lait.\n\n" + second.encode() + b"\n")
    offset = len(first.encode()) + 2 + 3
    jsonl = tmp_path / "bad.jsonl"
    jsonl.write_bytes(b'{"text": "caf\xe9"}\n' + json.dumps({"text": first}).encode() + b"\n")
    report = prepare([txt, jsonl, good_jsonl[0]], tmp_path / "out")
    assert reasons(report) == [
        f"{txt}:3: invalid UTF-8 at byte {offset} (0xe9); line skipped",
        f"{jsonl}:1: invalid UTF-8 at byte 13 (0xe9); line skipped",
    ]
    texts = [r["text"] for r in read_jsonl(tmp_path / "out" / "style.jsonl")]
    # The skipped line ends a paragraph: the text around it is never glued into one sentence.
    assert texts[0] == f"{first}\n\n{second}"
    assert texts[1:] == [first, *good_jsonl[1]]


def test_many_invalid_lines_summarised(tmp_path, rng):
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"\n".join(b"caf\xe9 %d" % i for i in range(30)) + b"\n\n" + paragraph(rng, 120).encode())
    report = prepare([path], tmp_path / "out")
    assert len(report.rejects) == corpus_sources.MAX_DECODE_REJECTS + 1
    assert "10 more lines with invalid UTF-8" in str(report.rejects[-1]) and "iconv" in str(report.rejects[-1])
    assert report.passages == 1


def test_bom_and_crlf_accepted(tmp_path, rng):
    text = paragraph(rng, 150)
    path = tmp_path / "windows.txt"
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(textwrap.wrap(text, 70)).encode() + b"\r\n\r\n")
    jsonl_text = paragraph(rng, 150)
    jsonl = tmp_path / "bom.jsonl"
    jsonl.write_bytes(b"\xef\xbb\xbf" + json.dumps({"text": jsonl_text}).encode() + b"\r\n")
    report = prepare([path, jsonl], tmp_path / "out")
    assert report.rejects == [] and report.passages == 2
    rows = read_jsonl(tmp_path / "out" / "style.jsonl")
    assert [r["text"] for r in rows] == [text, jsonl_text]  # BOM gone, CRLF-wrapped lines joined


def test_binary_and_utf16_files_rejected(tmp_path, good_jsonl):
    binary = tmp_path / "image.txt"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 10)
    utf16 = tmp_path / "utf16.txt"
    utf16.write_bytes("Hello world\n".encode("utf-16"))
    report = prepare([binary, utf16, good_jsonl[0]], tmp_path / "out")
    assert reasons(report) == [
        f"{binary}: binary file (contains NUL bytes)",
        f"{utf16}: UTF-16 text is not supported; save the file as UTF-8",
    ]
    assert report.passages == 4


def test_missing_path_empty_folder_unsupported_and_hidden_files(tmp_path, rng):
    empty = tmp_path / "empty"
    empty.mkdir()
    folder = tmp_path / "books"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.txt").write_text(paragraph(rng, 150), encoding="utf-8")
    (folder / "b.md").write_text(paragraph(rng, 150), encoding="utf-8")
    (folder / "cover.pdf").write_bytes(b"%PDF-1.4")
    (folder / ".hidden.txt").write_text(paragraph(rng, 150), encoding="utf-8")
    (folder / ".git").mkdir()
    (folder / ".git" / "x.txt").write_text(paragraph(rng, 150), encoding="utf-8")
    missing = tmp_path / "nope.txt"
    report = prepare([missing, empty, folder], tmp_path / "out")
    assert reasons(report) == [f"{missing}: no such file or folder",
                               f"{empty}: empty folder: no .txt, .md or .jsonl files in it"]
    assert [str(s) for s in report.skipped_files] == [f"{folder / 'cover.pdf'}: skipped: unsupported file type '.pdf'"]
    assert report.files_read == 2 and report.passages == 2
    assert sorted(r["source"] for r in read_jsonl(tmp_path / "out" / "style.jsonl")) == [
        f"{folder / 'b.md'}:1", f"{folder / 'sub' / 'a.txt'}:1"]


def test_symbolic_link_loops_and_broken_links_are_named_not_followed_forever(tmp_path, rng):
    folder = tmp_path / "books"
    (folder / "more").mkdir(parents=True)
    (folder / "a.txt").write_text(paragraph(rng, 150), encoding="utf-8")
    (folder / "more" / "b.txt").write_text(paragraph(rng, 150), encoding="utf-8")
    (folder / "more" / "up").symlink_to(folder)  # a folder link back to the top: a cycle
    (folder / "self").symlink_to(folder / "self")  # a link to itself (ELOOP)
    (folder / "gone.txt").symlink_to(tmp_path / "deleted.txt")
    (folder / "again.txt").symlink_to(folder / "a.txt")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "c.txt").write_text(paragraph(rng, 150), encoding="utf-8")
    (folder / "linked").symlink_to(elsewhere)  # a link to another folder is followed
    report = prepare([folder], tmp_path / "out")
    assert sorted(str(s) for s in report.skipped_files) == sorted([
        f"{folder / 'again.txt'}: skipped: same file as {folder / 'a.txt'}",
        f"{folder / 'gone.txt'}: skipped: broken symbolic link to {tmp_path / 'deleted.txt'}",
        f"{folder / 'more' / 'up'}: skipped: symbolic link loop (points back to {folder})",
        f"{folder / 'self'}: skipped: symbolic link loop",
    ])
    assert report.files_read == 3 and report.passages == 3


def _long_line(rng: random.Random, megabytes: int) -> str:
    parts, size = [], 0
    while size < megabytes * 1_000_000:
        s = sentence(rng)
        parts.append(s)
        size += len(s) + 1
    return " ".join(parts)


def test_ten_megabyte_line_split_by_sentences_quickly(tmp_path, rng, good_jsonl):
    line = _long_line(rng, 10)
    path = tmp_path / "one-line.txt"
    path.write_text(line, encoding="utf-8")
    started = time.perf_counter()
    report = prepare([path, good_jsonl[0]], tmp_path / "out")
    elapsed = time.perf_counter() - started
    assert elapsed < 15, elapsed  # about 3 s on a loaded 2-core machine
    assert report.rejects == []
    rows = read_jsonl(tmp_path / "out" / "style.jsonl")
    from_line = [r for r in rows if r["source"] == f"{path}:1"]
    assert len(from_line) > 1000
    assert all(100 <= r["words"] <= 500 and r["text"].endswith(".") for r in from_line)
    assert all(any(r["text"] == t for r in rows) for t in good_jsonl[1])


def test_long_jsonl_line_and_line_over_limit(tmp_path, rng, monkeypatch, good_jsonl):
    big = write_jsonl(tmp_path / "big.jsonl", [{"text": _long_line(rng, 2)}])
    monkeypatch.setattr(corpus_sources, "MAX_LINE_BYTES", 1_000_000)  # stands in for 64 MiB
    huge = tmp_path / "huge.txt"
    before, after = paragraph(rng, 150), paragraph(rng, 150)
    huge.write_text(f"{before}\n\n{'word ' * 300_000}\n\n{after}\n")
    report = prepare([big, huge, good_jsonl[0]], tmp_path / "out")
    assert reasons(report) == [f"{big}:1: line longer than 0 MiB; skipped", f"{huge}:3: line longer than 0 MiB; skipped"]
    rows = read_jsonl(tmp_path / "out" / "style.jsonl")
    assert [(r["source"], r["text"]) for r in rows[:1]] == [(f"{huge}:1", f"{before}\n\n{after}")]
    assert [r["text"] for r in rows[1:]] == good_jsonl[1]
    monkeypatch.undo()
    report = prepare([big], tmp_path / "out2")
    assert report.rejects == [] and report.passages > 100


def test_nothing_usable_writes_nothing(tmp_path):
    bad = write_jsonl(tmp_path / "bad.jsonl", ["not json", {"text": ""}])
    out = tmp_path / "out"
    report = prepare([bad, tmp_path / "missing"], out)
    assert not report.output_written and report.exit_code == 2
    assert len(report.rejects) == 3
    assert not out.exists()
    assert "Nothing usable" in report.format_text()


# --- Hugging Face datasets (a fake `datasets` module: no network in tests) -----------


class _FakeTable(list):
    column_names = ["text", "label"]


def test_dataset_source(tmp_path, rng, monkeypatch):
    texts = [paragraph(rng, 150) for _ in range(3)]
    calls = []

    def load_dataset(name, split):
        calls.append((name, split))
        if name == "owner/broken":
            raise ConnectionError("Couldn't reach 'owner/broken' on the Hub (LocalEntryNotFoundError)\nmore detail")
        return _FakeTable([{"text": texts[0], "label": 1}, {"text": None, "label": 0},
                           {"text": texts[1], "label": 1}, {"text": texts[2], "label": 2}])

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    report = prepare(["owner/books:validation", "owner/broken"], tmp_path / "out")
    assert calls == [("owner/books", "validation"), ("owner/broken", "train")]
    assert reasons(report) == [
        "owner/books:validation:2: 'text' is null, not a string",
        "owner/broken: could not load dataset owner/broken: Couldn't reach 'owner/broken' on the Hub "
        "(LocalEntryNotFoundError)",
    ]
    rows = read_jsonl(tmp_path / "out" / "style.jsonl")
    assert [r["text"] for r in rows] == texts
    assert rows[2]["source"] == "owner/books:validation:4"
    report = prepare(["owner/books"], tmp_path / "out2", PrepareOptions(text_column="body"))
    assert reasons(report) == ["owner/books: dataset has no column 'body' (columns: text, label); "
                               "choose one with --text-column"]


# --- tokens --------------------------------------------------------------------------


@pytest.fixture
def tokenizer_file(tmp_path, rng) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["[UNK]"])
    tokenizer.train_from_iterator([paragraph(rng, 200) for _ in range(20)], trainer)
    folder = tmp_path / "model"
    folder.mkdir()
    tokenizer.save(str(folder / "tokenizer.json"))
    return folder / "tokenizer.json"


def test_exact_token_counts_with_tokenizer(tmp_path, rng, tokenizer_file):
    from tokenizers import Tokenizer

    path = write_jsonl(tmp_path / "c.jsonl", [{"text": paragraph(rng, n)} for n in (120, 200, 300)])
    for spec in (tokenizer_file, tokenizer_file.parent):  # the file or the model folder
        report = prepare([path], tmp_path / "out", PrepareOptions(tokenizer=str(spec)))
        assert report.tokens_exact and report.tokens_note == ""
        reference = Tokenizer.from_file(str(tokenizer_file))
        rows = read_jsonl(tmp_path / "out" / "style.jsonl")
        expected = [len(reference.encode(r["text"], add_special_tokens=False).ids) for r in rows]
        assert [r["tokens"] for r in rows] == expected
        assert expected != [round(r["words"] * 1.3) for r in rows]
        assert report.tokens.max == max(expected) and report.tokens.min == min(expected)


def test_estimated_tokens_said_so(tmp_path, good_jsonl):
    report = prepare([good_jsonl[0]], tmp_path / "out")
    assert not report.tokens_exact and "estimated" in report.tokens_note
    assert [r["tokens"] for r in read_jsonl(tmp_path / "out" / "style.jsonl")] == [round(260 * 1.3)] * 4
    assert "estimated at 1.3 per word" in report.format_text()


def test_bad_tokenizer_is_an_error(tmp_path, good_jsonl):
    with pytest.raises(CorpusError, match="tokenizer not found"):
        prepare([good_jsonl[0]], tmp_path / "out", PrepareOptions(tokenizer=str(tmp_path / "nope.json")))
    (tmp_path / "empty-model").mkdir()
    with pytest.raises(CorpusError, match="no tokenizer.json in"):
        prepare([good_jsonl[0]], tmp_path / "out", PrepareOptions(tokenizer=str(tmp_path / "empty-model")))
    (tmp_path / "broken.json").write_text("{}")
    with pytest.raises(CorpusError, match="cannot load tokenizer"):
        prepare([good_jsonl[0]], tmp_path / "out", PrepareOptions(tokenizer=str(tmp_path / "broken.json")))
    assert not (tmp_path / "out").exists()


# --- the report ----------------------------------------------------------------------


def test_report_distributions_and_round_trip(tmp_path, rng):
    sizes = [100, 150, 200, 250, 300, 350, 400, 450, 500, 120]
    path = write_jsonl(tmp_path / "c.jsonl", [{"text": paragraph(rng, n)} for n in sizes])
    options = PrepareOptions(max_words=500)
    report = prepare([path, tmp_path / "missing.txt"], tmp_path / "out", options)
    ordered = sorted(sizes)
    assert report.passages == 10 and report.total_words == sum(sizes)
    assert (report.words.min, report.words.max) == (100, 500)
    assert report.words.median == (ordered[4] + ordered[5]) / 2
    assert report.words.p90 == pytest.approx(ordered[8] + 0.1 * (ordered[9] - ordered[8]))
    assert sum(b.count for b in report.words.histogram) == 10
    for b in report.words.histogram:
        assert b.count == sum(1 for s in sizes if b.lo <= s < b.hi or (s == 500 and b.hi > 500 >= b.lo))
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert PrepareReport.from_dict(saved) == report
    assert saved["sources"] == [str(path), str(tmp_path / "missing.txt")]
    assert saved["options"]["max_words"] == 500
    text = report.format_text()
    assert "Passages: 10 (2820 words)" in text and f"{tmp_path / 'missing.txt'}: no such file" in text
    assert report.exit_code == 1


# --- the corpus folder: load, exclude, re-chunk --------------------------------------


def test_load_exclude_include_rechunk_round_trip(tmp_path, rng):
    path = tmp_path / "book.txt"
    path.write_text(book(rng, [rng.randint(30, 90) for _ in range(120)]), encoding="utf-8")
    out = tmp_path / "corpus"
    report = prepare([path], out)
    corpus = load_corpus(out)
    assert [p.text for p in corpus.passages] == [r["text"] for r in read_jsonl(out / "style.jsonl")]
    assert len(corpus.passages) == report.passages
    assert {p.split for p in corpus.passages} == {"train", "eval"}
    first_train = next(p for p in corpus.passages if p.split == "train")
    assert corpus.record_for(first_train.id)["input"] == passage_to_record(first_train.text)["input"]
    splits_before = {p.id: p.split for p in corpus.passages}
    train_before = (out / "train.jsonl").read_text()

    report = set_excluded(out, [first_train.id], True)
    assert report.excluded == 1 and report.passages == len(corpus.passages) - 1
    reloaded = load_corpus(out)
    assert [p.id for p in reloaded.passages] == [p.id for p in corpus.passages]  # order kept
    assert next(p for p in reloaded.passages if p.id == first_train.id).excluded
    assert first_train.id not in {r["id"] for r in read_jsonl(out / "train.jsonl") + read_jsonl(out / "eval.jsonl")}
    assert [r["id"] for r in read_jsonl(out / "excluded.jsonl")] == [first_train.id]
    # Excluding one passage does not move any other between train and eval.
    assert all(splits_before[p.id] == p.split for p in reloaded.passages if not p.excluded)

    set_excluded(out, [first_train.id], False)
    assert (out / "train.jsonl").read_text() == train_before
    with pytest.raises(CorpusError, match="no passage with id nope"):
        set_excluded(out, ["nope"])

    set_excluded(out, [first_train.id], True)
    report = rechunk(out)  # same options: same passages, exclusion kept
    assert report.excluded == 1 and load_corpus(out).passages[first_train.n].excluded
    report = rechunk(out, PrepareOptions(min_words=150, max_words=200))
    corpus = load_corpus(out)
    assert all(150 <= p.words <= 200 for p in corpus.passages)
    assert corpus.options.max_words == 200 and report.options["max_words"] == 200


def test_load_corpus_rejects_other_folders(tmp_path, good_jsonl):
    with pytest.raises(CorpusError, match="not a prepared corpus folder"):
        load_corpus(tmp_path)
    out = tmp_path / "out"
    prepare([good_jsonl[0]], out)
    (out / "train.jsonl").write_text("")  # as if a write had been interrupted
    with pytest.raises(CorpusError, match="train.jsonl has 0 rows"):
        load_corpus(out)


def test_failed_write_leaves_no_temporary_files(tmp_path, good_jsonl, monkeypatch):
    out = tmp_path / "out"
    prepare([good_jsonl[0]], out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("stylelora_tui.corpus.folder.os.replace", no_space)
    with pytest.raises(CorpusError, match="No space left on device"):
        prepare([good_jsonl[0]], out, PrepareOptions(seed=1))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_progress_and_cancel(tmp_path, rng, good_jsonl):
    seen: list[tuple[str, float]] = []
    prepare([good_jsonl[0]], tmp_path / "out", progress=lambda message, fraction: seen.append((message, fraction)))
    fractions = [f for _, f in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any(m.startswith("reading good.jsonl") for m, _ in seen)

    cancel = threading.Event()

    def cancel_when_reading(message: str, fraction: float) -> None:
        if message.startswith("reading"):
            cancel.set()

    with pytest.raises(PrepareCancelled):
        prepare([good_jsonl[0]], tmp_path / "cancelled", progress=cancel_when_reading, cancel=cancel)
    assert not (tmp_path / "cancelled").exists()


def test_invalid_options(tmp_path, good_jsonl):
    with pytest.raises(CorpusError, match=r"max_words \(50\) is below min_words \(100\)"):
        prepare([good_jsonl[0]], tmp_path / "out", PrepareOptions(max_words=50))
    assert PrepareOptions(eval_fraction=1.0, input_words=0).validate() == [
        "input_words must be a whole number of at least 1 (got 0)", "eval_fraction must be in [0, 1) (got 1.0)"]


def test_core_imports_nothing_heavy():
    code = (
        "import sys, stylelora_tui.corpus.pipeline, stylelora_tui.cli.corpus\n"
        "heavy = ('textual', 'torch', 'transformers', 'trl', 'peft', 'unsloth', 'tokenizers', 'datasets')\n"
        "print([m for m in heavy if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_unreachable_hub_dataset_is_a_clear_reject_with_the_real_library(tmp_path, monkeypatch):
    # The real `datasets`, offline: the failure a user without network sees.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    report = prepare(["nobody-here/no-such-dataset"], tmp_path / "out")
    assert not report.output_written
    [reject] = report.rejects
    assert reject.path == "nobody-here/no-such-dataset"
    assert "could not load dataset nobody-here/no-such-dataset" in reject.reason
