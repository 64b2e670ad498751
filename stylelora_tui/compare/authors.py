"""Whose style each side learned: the authors of a comparison of several runs.

A run learned the author of its corpus; a mix learned the authors of the runs
it was mixed from (their paths are in its ``mix.json``). When the runs
compared come from more than one corpus, every side (base, A, B, A+B...) is
scored against each author's held-out passages, each with that author's own
feature words, so one can read how far a mix sits from each of its parents'
authors. The prompts stay the first run's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from stylelora_tui.runs.run import Run


@dataclass(frozen=True)
class Author:
    name: str  # what the reader sees: the corpus folder's name (with its parent's when two share one)
    corpus: Path
    runs: tuple[str, ...]  # the sides that learned this author, directly or through a mix

    @property
    def eval_path(self) -> Path:
        return self.corpus / "eval.jsonl"


def _corpus(run: Run) -> Path:
    return Path(run.config()["data"]["corpus"]).resolve()


def corpora_of(run: Run) -> list[Path]:
    """The corpora a run learned from: its own, or its mix sources' (each source's corpus, in recipe order).

    A source that is gone or unreadable counts as the mix's own corpus (its
    config is the first source's), so a moved workspace still scores.
    """
    recipe_path = run.path / "mix.json"
    if not recipe_path.exists():
        return [_corpus(run)]
    try:
        sources = json.loads(recipe_path.read_text(encoding="utf-8")).get("sources") or []
    except (OSError, ValueError, AttributeError):
        sources = []
    found: list[Path] = []
    for source in sources:
        try:
            corpus = _corpus(Run(Path(str(source["path"]))))
        except Exception:  # noqa: BLE001 - a missing or broken source run: the mix's own corpus below
            continue
        if corpus not in found:
            found.append(corpus)
    return found or [_corpus(run)]


def authors_of(runs: Sequence[Run]) -> list[Author]:
    """Each distinct corpus of ``runs`` (first run's first) with the runs that learned it."""
    learned: dict[Path, list[str]] = {}
    for run in runs:
        for corpus in corpora_of(run):
            learned.setdefault(corpus, []).append(run.name)
    names = [corpus.name for corpus in learned]
    return [Author(f"{corpus.parent.name}/{corpus.name}" if names.count(corpus.name) > 1 else corpus.name, corpus, tuple(sides))
            for corpus, sides in learned.items()]


def author_passages(author: Author) -> list[str]:
    """The author's held-out passages (what the style is scored against); raises ``ValueError``/``OSError``."""
    from stylelora_tui.prompting import read_jsonl

    return [str(r["output"]) for r in read_jsonl(author.eval_path) if r.get("output")]


def by_author(authors: Sequence[Author], texts: Mapping[str, Sequence[str]]) -> list[dict[str, Any]]:
    """Burrows's Delta of every side's samples to each author's held-out text; the closest side named.

    One entry per author, in ``authors`` order. An author whose passages
    cannot be read gets an ``error`` and no deltas, instead of failing the
    whole report.
    """
    from stylelora_tui.compare.stylometry import burrows_delta

    entries = []
    for author in authors:
        entry: dict[str, Any] = {"author": author.name, "corpus": str(author.corpus), "runs": list(author.runs)}
        try:
            passages = author_passages(author)
        except (OSError, ValueError) as exc:
            entries.append({**entry, "error": str(exc), "delta": {}})
            continue
        deltas, vocabulary = burrows_delta(passages, texts)
        scored = [(delta, side) for side, delta in deltas.items() if delta is not None]
        entries.append({**entry, "texts": len(passages), "feature_words": len(vocabulary), "delta": deltas,
                        "closest": min(scored)[1] if scored else None})
    return entries


def author_line(entry: Mapping[str, Any], sides: Sequence[str]) -> str:
    """One author's distances for a reader: "to lighthouse (A, A+B): base 0.63 · A 0.41 · ... · closest A"."""
    learned = ", ".join(entry.get("runs") or [])
    head = f"to {entry.get('author')}" + (f" ({learned})" if learned else "")
    if entry.get("error"):
        return f"{head}: cannot read its held-out text ({entry['error']})"
    deltas = entry.get("delta") or {}
    figures = " · ".join(f"{side} {deltas[side]:.2f}" if isinstance(deltas.get(side), (int, float)) else f"{side} -"
                         for side in sides)
    closest = entry.get("closest")
    return f"{head}: Delta {figures}" + (f" · closest {closest}" if closest else "")


def style_with_authors(author_texts: Sequence[str], base_texts: Sequence[str], adapted: Mapping[str, Sequence[str]],
                       authors: Sequence[Author] = ()) -> dict[str, Any]:
    """The style report (``stylometry.style_report``), with ``by_author`` when the sides learned several authors."""
    from stylelora_tui.compare.stylometry import style_report

    report = style_report(author_texts, base_texts, adapted)
    if len(authors) > 1:
        report["by_author"] = by_author(authors, {"base": list(base_texts), **{k: list(v) for k, v in adapted.items()}})
    return report


def only_sides(entry: Mapping[str, Any], sides: Sequence[str]) -> dict[str, Any]:
    """An author's entry cut down to ``sides`` (a result saved for fewer sides than were scored)."""
    deltas = {side: delta for side, delta in (entry.get("delta") or {}).items() if side in sides}
    scored = [(delta, side) for side, delta in deltas.items() if isinstance(delta, (int, float))]
    return {**entry, "delta": deltas, "closest": min(scored)[1] if scored else None}
