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
from typing import Any, Callable, Iterable

#: How a record is trained on (``data.format``). ``instruction``: the lab's chat
#: turn (instruction + opening words), loss on the author's continuation only.
#: ``raw_text``: the passage as plain text, loss on every token: the model
#: learns the prose itself, and is prompted with the bare opening words.
DATA_FORMATS = ("instruction", "raw_text")

#: The instruction of the lab's records (``prepare --instruction`` changes it); a
#: typed prompt gets the run's own instruction, this one when it has none.
DEFAULT_INSTRUCTION = "Continue in the author's style:"


def messages_for(record: dict[str, Any]) -> list[dict[str, str]]:
    """The user turn of the lab's record: instruction, a blank line, the opening words."""
    instruction = str(record.get("instruction", "")).strip()
    opening = str(record.get("input", "")).strip()
    content = f"{instruction}\n\n{opening}" if instruction else opening
    return [{"role": "user", "content": content}]


def record_format(cfg: dict[str, Any]) -> str:
    """A run config's data format (configs written before ``data.format`` existed are ``instruction``)."""
    return str(cfg.get("data", {}).get("format") or "instruction")


def bos_prefix(tokenizer: Any) -> str:
    """The BOS token where the tokenizer puts one before plain text (Llama 3 does, SmolLM2 does not)."""
    bos = getattr(tokenizer, "bos_token", None)
    if not bos or not callable(tokenizer):
        return ""
    try:
        ids = tokenizer("a")["input_ids"]
    except Exception:  # noqa: BLE001 - a tokenizer that cannot say: no prefix
        return ""
    return bos if ids and ids[0] == getattr(tokenizer, "bos_token_id", None) else ""


def render_prompt(tokenizer: Any, record: dict[str, Any], data_format: str = "instruction") -> str:
    """The prompt text: the chat template's user turn (``instruction``) or the bare opening words (``raw_text``)."""
    if data_format == "raw_text":
        return bos_prefix(tokenizer) + str(record.get("input", "")).strip()
    messages = messages_for(record)
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    # A base model without a template: a plain, stable layout.
    return f"{messages[0]['content']}\n\n"


def completion_text(tokenizer: Any, record: dict[str, Any], data_format: str = "instruction") -> str:
    """What the model learns to write: the author's continuation, then end-of-turn (end of text)."""
    text = str(record.get("output", "")).strip() + (tokenizer.eos_token or "")
    # raw_text: the continuation carries on the opening's sentence, after a space.
    return " " + text if data_format == "raw_text" and str(record.get("input", "")).strip() else text


@dataclass
class TokenizedSplit:
    rows: list[dict[str, list[int]]]
    truncated: int  # records cut at max_seq_length
    unusable: int  # records whose prompt alone fills max_seq_length
    longest: int  # tokens in the longest record before truncation


def tokenize_records(tokenizer: Any, records: Iterable[dict[str, Any]], max_seq_length: int,
                     data_format: str = "instruction") -> TokenizedSplit:
    """Token ids and a completion mask (1 = trained on) per record.

    Special tokens come from the chat template (or ``bos_prefix``) only
    (``add_special_tokens=False``), so no BOS is doubled. In ``raw_text`` every
    token is trained on, the opening words too.
    """
    rows = []
    truncated = unusable = longest = 0
    for record in records:
        prompt_ids = tokenizer(render_prompt(tokenizer, record, data_format), add_special_tokens=False)["input_ids"]
        completion_ids = tokenizer(completion_text(tokenizer, record, data_format), add_special_tokens=False)["input_ids"]
        total = len(prompt_ids) + len(completion_ids)
        longest = max(longest, total)
        if len(prompt_ids) >= max_seq_length:
            unusable += 1
            continue
        if total > max_seq_length:
            truncated += 1
            completion_ids = completion_ids[: max_seq_length - len(prompt_ids)]
        trained_prompt = 1 if data_format == "raw_text" else 0
        rows.append(
            {
                "input_ids": prompt_ids + completion_ids,
                "completion_mask": [trained_prompt] * len(prompt_ids) + [1] * len(completion_ids),
            }
        )
    return TokenizedSplit(rows, truncated, unusable, longest)


def pack_rows(rows: list[dict[str, list[int]]], max_seq_length: int) -> list[dict[str, list[int]]]:
    """Rows joined end to end (each ends with its end-of-text token) and cut into ``max_seq_length`` blocks.

    Every block but the last is full, so a batch carries no padding, and a
    record longer than ``max_seq_length`` is carried on in the next block
    instead of being cut off. Tokens and masks are kept exactly: the blocks
    hold the same tokens, in order, as the rows.
    """
    ids: list[int] = []
    mask: list[int] = []
    for row in rows:
        ids += row["input_ids"]
        mask += row["completion_mask"]
    return [
        {"input_ids": ids[start : start + max_seq_length], "completion_mask": mask[start : start + max_seq_length]}
        for start in range(0, len(ids), max_seq_length)
    ]


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


# --------------------------------------------------------------------------- the corpus preview


class TemplateTokenizer:
    """A tokenizer's chat template and special tokens read from ``tokenizer_config.json``, with jinja2 only.

    It answers the two things ``render_prompt`` and ``completion_text`` ask of a
    tokenizer, the way transformers' ``apply_chat_template`` renders, so the
    corpus preview shows what training sees without importing transformers.
    """

    def __init__(self, chat_template: str, bos_token: str, eos_token: str) -> None:
        from jinja2.exceptions import TemplateError
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def raise_exception(message: str) -> None:
            raise TemplateError(message)

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = raise_exception
        self.compiled = env.from_string(chat_template)  # raises on a broken template
        self.chat_template, self.bos_token, self.eos_token = chat_template, bos_token, eos_token

    def apply_chat_template(self, messages: list[dict[str, str]], *, tokenize: bool = False,
                            add_generation_prompt: bool = False) -> str:
        return self.compiled.render(messages=messages, add_generation_prompt=add_generation_prompt,
                                    bos_token=self.bos_token, eos_token=self.eos_token)


def chat_renderer(model_name: str, search_dirs: Iterable[Path] = ()) -> tuple[Callable[[dict], str] | None, str]:
    """A record as training sees it (``render_prompt`` + ``completion_text``), or None and why not.

    Reads ``tokenizer_config.json`` next to a local ``config.json``; never
    imports transformers.
    """
    from stylelora_tui.training.model_shapes import find_config

    try:
        found = find_config(model_name, search_dirs)
    except OSError:
        found = None
    if found is None:
        return None, "plain rendering: no local tokenizer with a chat template"
    path = found.parent / "tokenizer_config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, f"no readable {path.name} next to {found}: plain rendering"
    template = data.get("chat_template")
    if isinstance(template, list):  # named templates
        template = next((t.get("template") for t in template if t.get("name") == "default"), None)
    jinja = found.parent / "chat_template.jinja"  # where transformers saves it now, beside tokenizer_config.json
    if not isinstance(template, str) and jinja.is_file():
        path, template = jinja, jinja.read_text(encoding="utf-8")
    if not isinstance(template, str):
        return None, f"{path} has no chat template: plain rendering"

    def token(value: Any) -> str:
        return value.get("content", "") if isinstance(value, dict) else (value or "")

    try:
        tokenizer = TemplateTokenizer(template, token(data.get("bos_token")), token(data.get("eos_token")))
    except Exception as exc:  # noqa: BLE001 - a broken template: say so, render plainly
        return None, f"chat template of {path} does not compile ({exc}): plain rendering"

    def render(record: dict) -> str:
        return render_prompt(tokenizer, record) + completion_text(tokenizer, record)

    return render, f"chat template from {path}"


def plain_record(record: dict) -> str:
    """A record's turns, labelled, for when no chat template is at hand."""
    return f"[user]\n{messages_for(record)[0]['content']}\n\n[assistant]\n{str(record.get('output', '')).strip()}"
