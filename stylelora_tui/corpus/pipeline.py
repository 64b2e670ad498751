"""The corpus pipeline: author's text in, the lab's training records out.

``prepare(sources, out_dir)`` reads books (.txt/.md), ``style.jsonl`` files and
Hugging Face datasets, splits them into passages, drops duplicates, and writes
a corpus folder:

- ``style.jsonl``: the included passages, the lab's format plus provenance:
  ``{"text", "id", "source": "file:line", "n", "words", "tokens"}``.
- ``excluded.jsonl``: passages excluded by hand (same fields), so they can be
  included again without re-reading the sources.
- ``train.jsonl`` / ``eval.jsonl``: one instruction record per passage,
  ``{"instruction", "input", "output", "id", "source"}``; a passage is in one
  split only.
- ``report.json``: :class:`PrepareReport`, including the original sources and
  options so :func:`rechunk` can re-read them.

Every file is written to a temporary name and renamed; ``report.json`` is
renamed last, so a folder with a report is always complete.

This module is safe for the TUI to call from a worker thread: it imports
nothing heavy (``tokenizers`` and ``datasets`` are imported lazily, only when
used) and never Textual, torch or transformers.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import threading
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from stylelora_tui.corpus.dedup import find_duplicates, normalised_key
from stylelora_tui.corpus.report import (
    MAX_LISTED_DUPLICATES,
    TOKENS_PER_WORD_ESTIMATE,
    Distribution,
    PrepareReport,
)
from stylelora_tui.corpus.sources import CorpusError, PrepareCancelled, Reject, collect, looks_like_dataset
from stylelora_tui.corpus.text import split_passages

__all__ = [
    "Corpus", "CorpusError", "Distribution", "Passage", "PrepareCancelled", "PrepareOptions",
    "PrepareReport", "Reject", "load_corpus", "passage_to_record", "prepare", "rechunk",
    "set_excluded", "split_passages",
]

# A record needs this many output words (or output_words, if smaller); fewer
# teach the model little about how the author continues.
MIN_OUTPUT_WORDS = 50

ProgressCallback = Callable[[str, float], None]


@dataclass
class PrepareOptions:
    min_words: int = 100
    max_words: int = 500
    input_words: int = 50
    output_words: int = 200
    instruction: str = "Continue in the author's style:"
    eval_fraction: float = 0.1
    seed: int = 3407
    tokenizer: str | None = None  # tokenizer.json, a model folder holding one, or a cached Hub id
    near_duplicate_threshold: float = 0.9  # Jaccard of word 5-grams; above 1 disables near-dedup
    text_column: str = "text"  # for Hugging Face datasets

    @property
    def min_record_words(self) -> int:
        return self.input_words + min(MIN_OUTPUT_WORDS, self.output_words)

    @property
    def target_words(self) -> int:
        """Passages aim at input + output words: longer ones would be cut off in the record anyway."""
        return max(self.min_words, min(self.max_words, self.input_words + self.output_words))

    def validate(self) -> list[str]:
        problems = []
        for name in ("min_words", "max_words", "input_words", "output_words"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                problems.append(f"{name} must be a whole number of at least 1 (got {value!r})")
        if not problems and self.max_words < self.min_words:
            problems.append(f"max_words ({self.max_words}) is below min_words ({self.min_words})")
        if not 0 <= self.eval_fraction < 1:
            problems.append(f"eval_fraction must be in [0, 1) (got {self.eval_fraction!r})")
        if not 0 < self.near_duplicate_threshold:
            problems.append(f"near_duplicate_threshold must be above 0 (got {self.near_duplicate_threshold!r})")
        if not self.instruction.strip():
            problems.append("instruction must not be empty")
        return problems

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PrepareOptions":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class Passage:
    id: str
    n: int  # position in source order
    text: str
    source: str  # "path:line"
    words: int
    tokens: int
    excluded: bool = False
    split: str | None = None  # "train", "eval", or None when it makes no record

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "id": self.id, "source": self.source, "n": self.n,
                "words": self.words, "tokens": self.tokens}


@dataclass
class Corpus:
    """A prepared corpus folder, read back."""

    out_dir: Path
    passages: list[Passage]
    train: list[dict[str, Any]]
    eval: list[dict[str, Any]]
    report: PrepareReport
    options: PrepareOptions

    def record_for(self, passage_id: str) -> dict[str, Any] | None:
        for record in (*self.train, *self.eval):
            if record["id"] == passage_id:
                return record
        return None


# --- Records -------------------------------------------------------------------------

@functools.lru_cache(maxsize=32)
def _first_words(count: int) -> re.Pattern[str]:
    """Matches up to ``count`` leading words with the whitespace between them (in C, not a Python loop)."""
    return re.compile(r"\S+(?:\s+\S+){0,%d}" % (count - 1))


def passage_to_record(text: str, options: PrepareOptions | None = None) -> dict[str, str] | None:
    """The lab's instruction record for a passage, or None if it is too short for one.

    ``input`` is the first ``input_words`` words, ``output`` the next
    ``output_words`` (fewer is fine down to ``MIN_OUTPUT_WORDS``). Both keep the
    passage's own paragraph breaks, which are part of an author's style.
    """
    options = options or PrepareOptions()
    text = text.strip()
    head = _first_words(options.input_words).match(text)
    if head is None or len(head.group().split()) < options.input_words:
        return None
    rest = text[head.end() :].lstrip()
    tail = _first_words(options.output_words).match(rest)
    if tail is None or len(tail.group().split()) < options.min_record_words - options.input_words:
        return None
    return {"instruction": options.instruction, "input": head.group(), "output": tail.group()}


def _eval_ids(ids: list[str], options: PrepareOptions) -> set[str]:
    """Held-out passages: the same seed always picks the same ones, and excluding a
    passage never moves another passage between train and eval."""
    if options.eval_fraction <= 0 or len(ids) < 2:
        return set()
    count = min(len(ids) - 1, max(1, round(len(ids) * options.eval_fraction)))
    ranked = sorted(ids, key=lambda i: hashlib.sha1(f"{options.seed}:{i}".encode()).hexdigest())
    return set(ranked[:count])


# --- Tokens --------------------------------------------------------------------------


def _load_tokenizer(spec: str) -> tuple[Any | None, str]:
    """(tokenizer, note). Raises CorpusError for a path that is not a usable tokenizer."""
    path = Path(spec).expanduser()
    if path.is_dir():
        path = path / "tokenizer.json"
        if not path.is_file():
            raise CorpusError(f"no tokenizer.json in {spec}")
    elif not path.is_file():
        if not looks_like_dataset(spec):  # same "owner/name" shape as a model id
            raise CorpusError(f"tokenizer not found: {spec} (give a tokenizer.json or a model folder)")
        try:
            from huggingface_hub import try_to_load_from_cache  # lazy; never downloads
        except ImportError:
            return None, f"huggingface_hub is missing, cannot look up {spec}; token counts are estimated"
        cached = try_to_load_from_cache(spec, "tokenizer.json")
        if not isinstance(cached, str):
            return None, f"the tokenizer of {spec} is not in the local cache; token counts are estimated"
        path = Path(cached)
    try:
        from tokenizers import Tokenizer  # lazy: only when counting exact tokens
    except ImportError as error:
        raise CorpusError(f"cannot count tokens: the tokenizers package is missing ({error})") from error
    try:
        return Tokenizer.from_file(str(path)), ""
    except Exception as error:  # noqa: BLE001 - the Rust library raises plain Exception for bad files
        raise CorpusError(f"cannot load tokenizer {path}: {error}") from error


def _count_tokens(texts: list[str], tokenizer: Any, progress: Callable[[float], None],
                  cancel: threading.Event | None) -> list[int]:
    counts: list[int] = []
    batch = 512
    for start in range(0, len(texts), batch):
        _check(cancel)
        encodings = tokenizer.encode_batch(texts[start : start + batch], add_special_tokens=False)
        counts.extend(len(e.ids) for e in encodings)
        progress(min(1.0, (start + batch) / max(1, len(texts))))
    return counts


# --- Reading and splitting -----------------------------------------------------------


def _check(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise PrepareCancelled("cancelled")


# --- Building and writing the folder -------------------------------------------------


def _finish_report(report: PrepareReport, passages: list[Passage], options: PrepareOptions) -> tuple[list, list]:
    """Records for the included passages; fills the report's counts and distributions."""
    included = [p for p in passages if not p.excluded]
    records: dict[str, dict[str, Any]] = {}
    for passage in passages:
        passage.split = None
        if passage.excluded:
            continue
        record = passage_to_record(passage.text, options)
        if record is not None:
            records[passage.id] = {**record, "id": passage.id, "source": passage.source}
    eval_ids = _eval_ids(list(records), options)
    train, held_out = [], []
    for passage in included:
        if passage.id in records:
            passage.split = "eval" if passage.id in eval_ids else "train"
            (held_out if passage.split == "eval" else train).append(records[passage.id])
    report.options = options.to_dict()
    report.passages = len(included)
    report.excluded = len(passages) - len(included)
    report.total_words = sum(p.words for p in included)
    report.words = Distribution.of([p.words for p in included])
    report.tokens = Distribution.of([p.tokens for p in included])
    report.min_record_words = options.min_record_words
    report.too_short_for_record = len(included) - len(records)
    report.train_records = len(train)
    report.eval_records = len(held_out)
    return train, held_out


def _jsonl(rows: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def _write_folder(out_dir: Path, passages: list[Passage], train: list, held_out: list, report: PrepareReport) -> None:
    """Write every file under a temporary name, then rename them; report.json last."""
    if out_dir.exists() and not out_dir.is_dir():
        raise CorpusError(f"output {out_dir} exists and is not a folder")
    files = {
        "style.jsonl": _jsonl(p.to_json() for p in passages if not p.excluded),
        "excluded.jsonl": _jsonl(p.to_json() for p in passages if p.excluded),
        "train.jsonl": _jsonl(train),
        "eval.jsonl": _jsonl(held_out),
        "report.json": json.dumps(report.to_dict(), ensure_ascii=False, indent=2) + "\n",
    }
    temporary: dict[str, Path] = {}
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            tmp = out_dir / f".{name}.tmp-{os.getpid()}"
            temporary[name] = tmp
            with tmp.open("w", encoding="utf-8") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
        for name, tmp in temporary.items():  # dicts keep order: report.json is last
            os.replace(tmp, out_dir / name)
    except OSError as error:
        for tmp in temporary.values():
            tmp.unlink(missing_ok=True)
        raise CorpusError(f"cannot write corpus to {out_dir}: {error}") from error


# --- Public API ----------------------------------------------------------------------


def prepare(
    sources: list[str | Path],
    out_dir: Path | str,
    options: PrepareOptions | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    excluded_ids: Iterable[str] = (),
) -> PrepareReport:
    """Read ``sources``, split, deduplicate and write the corpus folder ``out_dir``.

    Bad input never raises: it is listed in ``report.rejects``. When nothing
    usable is found nothing is written and ``report.output_written`` is False.
    Raises :class:`CorpusError` for invalid options, an unusable tokenizer or an
    unwritable folder, and :class:`PrepareCancelled` (nothing written) when
    ``cancel`` is set. ``excluded_ids`` marks passages excluded from the start
    (used by :func:`rechunk` to keep the user's choices).
    """
    options = options or PrepareOptions()
    problems = options.validate()
    if problems:
        raise CorpusError("; ".join(problems))
    report_progress: ProgressCallback = progress or (lambda message, fraction: None)
    out_dir = Path(out_dir)
    tokenizer, tokens_note = (None, "") if options.tokenizer is None else _load_tokenizer(options.tokenizer)
    report = PrepareReport(
        sources=[str(Path(s).expanduser().resolve()) if Path(s).expanduser().exists() else str(s) for s in sources],
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        tokens_exact=tokenizer is not None,
        tokenizer=options.tokenizer,
        tokens_note=tokens_note or ("" if tokenizer else f"token counts estimated at {TOKENS_PER_WORD_ESTIMATE} per word; "
                                    "pass a tokenizer for exact counts"),
    )
    collected = collect(sources, options, report_progress, cancel)  # rejects name paths as given
    report.files_read, report.datasets_read = collected.files_read, collected.datasets_read
    report.skipped_files = collected.skipped
    _check(cancel)

    report_progress("finding duplicates", 0.65)
    texts = [raw.text for raw, _ in collected.passages]
    dropped = {d.index: d for d in find_duplicates(texts, options.near_duplicate_threshold)}
    _check(cancel)
    kept = [(i, raw, path) for i, (raw, path) in enumerate(collected.passages) if i not in dropped]

    report_progress("counting tokens", 0.7)
    if tokenizer is None:
        token_counts = [round(raw.words * TOKENS_PER_WORD_ESTIMATE) for _, raw, _ in kept]
    else:
        token_counts = _count_tokens([raw.text for _, raw, _ in kept], tokenizer,
                                     lambda f: report_progress("counting tokens", 0.7 + 0.2 * f), cancel)
    excluded = set(excluded_ids)
    passages: list[Passage] = []
    id_of_index: dict[int, str] = {}
    for n, ((index, raw, path), tokens) in enumerate(zip(kept, token_counts)):
        passage_id = normalised_key(raw.text)[:16]
        id_of_index[index] = passage_id
        passages.append(Passage(passage_id, n, raw.text, f"{path}:{raw.line}", raw.words, tokens,
                                excluded=passage_id in excluded))

    report.documents = collected.documents
    report.exact_duplicates = sum(1 for d in dropped.values() if d.kind == "exact")
    report.near_duplicates = len(dropped) - report.exact_duplicates
    for d in sorted(dropped.values(), key=lambda d: d.index)[:MAX_LISTED_DUPLICATES]:
        raw, path = collected.passages[d.index]
        kept_raw, kept_path = collected.passages[d.kept_index]
        report.duplicates.append({"source": f"{path}:{raw.line}", "duplicate_of": id_of_index[d.kept_index],
                                  "kept_source": f"{kept_path}:{kept_raw.line}", "kind": d.kind,
                                  "similarity": d.similarity})
    report.gutenberg_stripped = collected.gutenberg_stripped
    report.headings_dropped = collected.clean.headings_dropped
    report.notes_dropped = collected.clean.notes_dropped
    for name in ("fragments_merged", "fragments_dropped", "fragment_words_dropped", "long_sentences_cut"):
        setattr(report, name, getattr(collected.split, name))
    report.rejects = collected.rejects
    train, held_out = _finish_report(report, passages, options)

    if not passages:
        report_progress("nothing usable", 1.0)
        return report
    _check(cancel)
    report_progress("writing", 0.95)
    report.output_written = True
    _write_folder(out_dir, passages, train, held_out, report)
    report_progress("done", 1.0)
    return report


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def load_corpus(out_dir: Path | str) -> Corpus:
    """Read a folder written by :func:`prepare` (raises CorpusError if it is not one)."""
    out_dir = Path(out_dir)
    report_path = out_dir / "report.json"
    if not report_path.is_file():
        raise CorpusError(f"{out_dir} is not a prepared corpus folder (no report.json)")
    try:
        report = PrepareReport.from_dict(json.loads(report_path.read_text(encoding="utf-8")))
        rows = [(row, False) for row in _read_jsonl(out_dir / "style.jsonl")]
        rows += [(row, True) for row in _read_jsonl(out_dir / "excluded.jsonl")]
        train = _read_jsonl(out_dir / "train.jsonl")
        held_out = _read_jsonl(out_dir / "eval.jsonl")
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CorpusError(f"corpus folder {out_dir} is damaged: {error}") from error
    # report.json is renamed last: counts that disagree mean an interrupted write or a hand edit.
    expected = {"style.jsonl": report.passages, "excluded.jsonl": report.excluded,
                "train.jsonl": report.train_records, "eval.jsonl": report.eval_records}
    actual = {"style.jsonl": len(rows) - sum(1 for _, e in rows if e), "excluded.jsonl": sum(1 for _, e in rows if e),
              "train.jsonl": len(train), "eval.jsonl": len(held_out)}
    for name, count in expected.items():
        if actual[name] != count:
            raise CorpusError(f"corpus folder {out_dir} is inconsistent: {name} has {actual[name]} rows, "
                              f"report.json says {count}; prepare it again")
    split_of = {r["id"]: "train" for r in train} | {r["id"]: "eval" for r in held_out}
    passages = [
        Passage(row["id"], row["n"], row["text"], row["source"], row["words"], row["tokens"], excluded,
                split_of.get(row["id"]))
        for row, excluded in rows
    ]
    passages.sort(key=lambda p: p.n)
    return Corpus(out_dir, passages, train, held_out, report, PrepareOptions.from_dict(report.options))


def set_excluded(out_dir: Path | str, passage_ids: Iterable[str], excluded: bool = True) -> PrepareReport:
    """Exclude (or include again) passages by id and regenerate train/eval; returns the new report.

    The sources are not re-read. Other passages keep their train/eval split.
    """
    corpus = load_corpus(out_dir)
    wanted = set(passage_ids)
    unknown = wanted - {p.id for p in corpus.passages}
    if unknown:
        raise CorpusError(f"no passage with id {', '.join(sorted(unknown))} in {out_dir}")
    for passage in corpus.passages:
        if passage.id in wanted:
            passage.excluded = excluded
    report = corpus.report
    train, held_out = _finish_report(report, corpus.passages, corpus.options)
    _write_folder(corpus.out_dir, corpus.passages, train, held_out, report)
    return report


def rechunk(
    out_dir: Path | str,
    options: PrepareOptions | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> PrepareReport:
    """Re-read the folder's original sources and split them again with ``options``.

    Passages whose text is unchanged keep their id, and stay excluded if they were.
    With ``options`` None, the folder's own options are reused.
    """
    corpus = load_corpus(out_dir)
    excluded_ids = [p.id for p in corpus.passages if p.excluded]
    return prepare(corpus.report.sources, corpus.out_dir, options or corpus.options, progress, cancel, excluded_ids)
