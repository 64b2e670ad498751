"""The lab's instruction records: how a passage becomes ``{instruction, input, output}``,
and which passages are held out."""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import asdict, dataclass, fields
from typing import Any

from stylelora_tui.prompting import DEFAULT_INSTRUCTION

# A record needs this many output words (or output_words, if smaller); fewer
# teach the model little about how the author continues.
MIN_OUTPUT_WORDS = 50

@dataclass
class PrepareOptions:
    min_words: int = 100
    max_words: int = 500
    input_words: int = 50
    output_words: int = 200
    instruction: str = DEFAULT_INSTRUCTION
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


def held_out_ids(ids: list[str], options: PrepareOptions) -> set[str]:
    """Held-out passages: the same seed always picks the same ones, and excluding a
    passage never moves another passage between train and eval."""
    if options.eval_fraction <= 0 or len(ids) < 2:
        return set()
    count = min(len(ids) - 1, max(1, round(len(ids) * options.eval_fraction)))
    ranked = sorted(ids, key=lambda i: hashlib.sha1(f"{options.seed}:{i}".encode()).hexdigest())
    return set(ranked[:count])
