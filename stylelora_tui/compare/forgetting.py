"""The forgetting check: did the adapter cost the model its general English?

Base and adapted models are scored, as plain text (loss on every token), on
general English passages that have nothing to do with the author: by default
``data/general_english.md``, twelve short passages in everyday registers
(news, instructions, reference, a letter, a review...) written for the
project, or a user's own file (``compare --general FILE``). The change of the
adapted model's loss against the base's, in percent, is the forgetting; a
rise over ``FORGETTING_THRESHOLD`` is flagged (the figures behind the
threshold are in docs/benchmarks.md).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

#: The ``split`` tag of the generation process's ``eval_loss`` lines for the general text.
GENERAL_SPLIT = "general"
#: The built-in general English text.
BUILT_IN = Path(__file__).resolve().parents[1] / "data" / "general_english.md"
#: A rise of the general-text loss above this share of the base's is flagged. 5% of a loss near 3 nats is a
#: perplexity about 16% higher: past the few percent a style adapter costs at the lab's settings (measured:
#: docs/benchmarks.md), and where an over-trained adapter lands.
FORGETTING_THRESHOLD = 0.05
#: Longer paragraphs are cut into passages of about this many words (a passage must fit max_seq_length).
PASSAGE_WORDS = 250


class GeneralTextError(ValueError):
    """A general-text file that cannot be used: the message names the file and what is wrong."""


def _chunks(paragraph: str) -> list[str]:
    words = paragraph.split()
    return [" ".join(words[i : i + PASSAGE_WORDS]) for i in range(0, len(words), PASSAGE_WORDS)]


def general_passages(path: Path | None = None) -> list[str]:
    """The passages of a general-text file: a Markdown file's ``##`` sections, a text file's paragraphs
    (blank-line separated), or a JSONL file's ``text`` (or ``output``) fields; raises ``GeneralTextError``."""
    path = Path(path) if path is not None else BUILT_IN
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GeneralTextError(f"{path}: no such file (give a .md, .txt or .jsonl file of general English text)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise GeneralTextError(f"{path}: cannot be read as UTF-8 text ({exc})") from None
    if path.suffix == ".jsonl":
        paragraphs = []
        for number, line in enumerate(raw.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise GeneralTextError(f"{path}, line {number}: not JSON ({exc.msg})") from None
            text = record.get("text") or record.get("output") if isinstance(record, dict) else None
            if not isinstance(text, str):
                raise GeneralTextError(f"{path}, line {number}: no 'text' (or 'output') string")
            paragraphs.append(text)
    else:
        raw = re.sub(r"<!--.*?-->", "", raw, flags=re.S)
        if path.suffix == ".md" and re.search(r"^## ", raw, flags=re.M):
            paragraphs = [section.split("\n", 1)[1] if "\n" in section else "" for section in re.split(r"^## ", raw, flags=re.M)[1:]]
        else:
            paragraphs = re.split(r"\n\s*\n", raw)
        paragraphs = ["\n".join(line for line in p.splitlines() if not line.startswith("#")) for p in paragraphs]
    passages = [chunk for p in paragraphs for chunk in _chunks(p)]
    if not passages:
        raise GeneralTextError(f"{path}: no text in it to score")
    return passages


def general_records(path: Path | None = None) -> list[dict[str, Any]]:
    """The passages as records the generation process scores as plain text (``data_format`` raw_text)."""
    return [{"id": f"general-{i}", "input": "", "output": text} for i, text in enumerate(general_passages(path), 1)]


def source_name(path: Path | None) -> str:
    return "built-in general English sample" if path is None else str(path)


def forgetting_report(general: dict[str, dict[str, Any]], held_out: dict[str, dict[str, Any]], base: str,
                      source: str, threshold: float = FORGETTING_THRESHOLD) -> dict[str, Any] | None:
    """Per adapted side: the general-text loss of base and adapted, its change, whether it is flagged, and the
    held-out (author) loss change beside it; None before the base's general loss is known."""
    base_loss = (general.get(base) or {}).get("eval_loss")
    if not isinstance(base_loss, (int, float)) or base_loss <= 0:
        return None
    sides = {}
    for name, loss in general.items():
        value = (loss or {}).get("eval_loss")
        if name == base or not isinstance(value, (int, float)):
            continue
        change = value / base_loss - 1
        author_base, author = ((held_out.get(v) or {}).get("eval_loss") for v in (base, name))
        author_change = author / author_base - 1 if isinstance(author, (int, float)) and isinstance(author_base, (int, float)) and author_base > 0 else None
        sides[name] = {"base_loss": base_loss, "adapted_loss": value, "change": change, "flagged": change > threshold,
                       "held_out_change": author_change}
    return {"source": source, "threshold": threshold, "variants": sides}


def forgetting_line(report: dict[str, Any] | None, name: str) -> str:
    """One line for a side: "general English: loss 3.100 -> 3.171 (+2.3%), within 5%", or "...: over 5%, forgetting"."""
    side = ((report or {}).get("variants") or {}).get(name)
    if not isinstance(side, dict):
        return ""
    try:
        change, threshold = float(side["change"]), float(report["threshold"])  # type: ignore[index]
        figures = f"loss {float(side['base_loss']):.3f} -> {float(side['adapted_loss']):.3f} ({change:+.1%})"
    except (KeyError, TypeError, ValueError):
        return ""  # a hand-edited compare.json: say nothing rather than something wrong
    if side.get("flagged"):
        return f"general English: {figures}: over {threshold:.0%}, forgetting"
    return f"general English: {figures}, within {threshold:.0%}"
