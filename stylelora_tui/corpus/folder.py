"""A prepared corpus folder: its files, written atomically, and read back.

- ``style.jsonl``: the included passages, the lab's format plus provenance:
  ``{"text", "id", "source": "file:line", "n", "words", "tokens"}``.
- ``excluded.jsonl``: passages excluded by hand (same fields), so they can be
  included again without re-reading the sources.
- ``train.jsonl`` / ``eval.jsonl``: one instruction record per passage,
  ``{"instruction", "input", "output", "id", "source"}``; a passage is in one
  split only.
- ``report.json``: the ``PrepareReport``, including the original sources and
  options so a re-chunk can re-read them.

Every file is written to a temporary name and renamed; ``report.json`` is
renamed last, so a folder with a report is always complete.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from stylelora_tui.corpus.records import PrepareOptions
from stylelora_tui.corpus.report import PrepareReport
from stylelora_tui.corpus.sources import CorpusError


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


def _jsonl(rows: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def write_folder(out_dir: Path, passages: list[Passage], train: list, held_out: list, report: PrepareReport) -> None:
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


def read_jsonl(path: Path) -> list[dict[str, Any]]:
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
        rows = [(row, False) for row in read_jsonl(out_dir / "style.jsonl")]
        rows += [(row, True) for row in read_jsonl(out_dir / "excluded.jsonl")]
        train = read_jsonl(out_dir / "train.jsonl")
        held_out = read_jsonl(out_dir / "eval.jsonl")
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
