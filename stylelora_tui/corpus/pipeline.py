"""The corpus pipeline: author's text in, the lab's training records out.

``prepare(sources, out_dir)`` reads books (.txt/.md), ``style.jsonl`` files and
Hugging Face datasets (``sources``), splits them into passages (``text``),
drops duplicates (``dedup``), makes the lab's records (``records``) and writes
a corpus folder (``folder``, which documents its files). ``set_excluded`` and
``rechunk`` change a prepared folder in place.

This module is safe for the TUI to call from a worker thread: it imports
nothing heavy (``tokenizers`` and ``datasets`` are imported lazily, only when
used) and never Textual, torch or transformers.
"""

from __future__ import annotations

import threading
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
from stylelora_tui.corpus.collect import collect
from stylelora_tui.corpus.sources import CorpusError, PrepareCancelled, Reject, looks_like_dataset
from stylelora_tui.corpus.folder import Corpus, Passage, load_corpus, write_folder
from stylelora_tui.corpus.records import PrepareOptions, held_out_ids, passage_to_record
from stylelora_tui.corpus.passages import split_passages

__all__ = [
    "Corpus", "CorpusError", "Distribution", "Passage", "PrepareCancelled", "PrepareOptions",
    "PrepareReport", "Reject", "load_corpus", "passage_to_record", "prepare", "rechunk",
    "set_excluded", "split_passages",
]

ProgressCallback = Callable[[str, float], None]


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
    eval_ids = held_out_ids(list(records), options)
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
    write_folder(out_dir, passages, train, held_out, report)
    report_progress("done", 1.0)
    return report


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
    write_folder(corpus.out_dir, corpus.passages, train, held_out, report)
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
