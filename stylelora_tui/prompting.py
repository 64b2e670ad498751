"""How an instruction record becomes model input, in training and in generation.

One function renders a prompt for both, so the model is trained on exactly the
text it is later prompted with (chat-template mismatches between training and
inference are the classic reason a merged model "forgets" its style).

The tokenizer is passed in (duck-typed): this module imports nothing heavy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable


def messages_for(record: dict[str, Any]) -> list[dict[str, str]]:
    """The user turn of the lab's record: instruction, a blank line, the opening words."""
    instruction = str(record.get("instruction", "")).strip()
    opening = str(record.get("input", "")).strip()
    content = f"{instruction}\n\n{opening}" if instruction else opening
    return [{"role": "user", "content": content}]


def render_prompt(tokenizer: Any, record: dict[str, Any]) -> str:
    """The prompt text, through the tokenizer's chat template when it has one."""
    messages = messages_for(record)
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    # A base model without a template: a plain, stable layout.
    return f"{messages[0]['content']}\n\n"


def completion_text(tokenizer: Any, record: dict[str, Any]) -> str:
    """What the model learns to write: the author's continuation, then end-of-turn."""
    return str(record.get("output", "")).strip() + (tokenizer.eos_token or "")


@dataclass
class TokenizedSplit:
    rows: list[dict[str, list[int]]]
    truncated: int  # records cut at max_seq_length
    unusable: int  # records whose prompt alone fills max_seq_length
    longest: int  # tokens in the longest record before truncation


def tokenize_records(tokenizer: Any, records: Iterable[dict[str, Any]], max_seq_length: int) -> TokenizedSplit:
    """Token ids and a completion mask (1 = trained on) per record.

    Special tokens come from the chat template only (``add_special_tokens=False``),
    so no BOS is doubled.
    """
    rows = []
    truncated = unusable = longest = 0
    for record in records:
        prompt_ids = tokenizer(render_prompt(tokenizer, record), add_special_tokens=False)["input_ids"]
        completion_ids = tokenizer(completion_text(tokenizer, record), add_special_tokens=False)["input_ids"]
        total = len(prompt_ids) + len(completion_ids)
        longest = max(longest, total)
        if len(prompt_ids) >= max_seq_length:
            unusable += 1
            continue
        if total > max_seq_length:
            truncated += 1
            completion_ids = completion_ids[: max_seq_length - len(prompt_ids)]
        rows.append(
            {
                "input_ids": prompt_ids + completion_ids,
                "completion_mask": [0] * len(prompt_ids) + [1] * len(completion_ids),
            }
        )
    return TokenizedSplit(rows, truncated, unusable, longest)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records of a prepared corpus file (written by us, so strict)."""
    records = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not valid JSON ({exc.msg}); re-run `stylelora-tui prepare`") from None
            if not isinstance(record, dict) or not isinstance(record.get("output"), str):
                raise ValueError(f'{path}:{number}: not an instruction record (needs "instruction", "input", "output")')
            if record.get("excluded"):
                continue
            records.append(record)
    return records
