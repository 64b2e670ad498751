"""How records become training rows: the two data formats and packing, with a real tokenizer."""

from __future__ import annotations

import pytest

from stylelora_tui.prompting import pack_rows, render_prompt, tokenize_records

RECORDS = [
    {"instruction": "Continue in the author's style:", "input": "You climb the stair", "output": "and the lamp waits. " * (i + 1)}
    for i in range(6)
]


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def test_instruction_rows_train_on_the_continuation_only(tokenizer):
    rows = tokenize_records(tokenizer, RECORDS, 512).rows
    prompt = tokenizer(render_prompt(tokenizer, RECORDS[0]), add_special_tokens=False)["input_ids"]
    assert "Continue in the author's style:" in render_prompt(tokenizer, RECORDS[0])
    assert rows[0]["completion_mask"][: len(prompt)] == [0] * len(prompt)
    assert set(rows[0]["completion_mask"][len(prompt):]) == {1}


def test_raw_text_rows_are_the_plain_passage_with_every_token_trained(tokenizer):
    rows = tokenize_records(tokenizer, RECORDS, 512, "raw_text").rows
    text = tokenizer.decode(rows[0]["input_ids"], skip_special_tokens=True)
    assert text == "You climb the stair and the lamp waits."  # no template, no instruction, one space at the seam
    assert render_prompt(tokenizer, RECORDS[0], "raw_text").endswith("You climb the stair")
    assert all(mask == [1] * len(row["input_ids"]) for row, mask in ((r, r["completion_mask"]) for r in rows))
    assert rows[0]["input_ids"][-1] == tokenizer.eos_token_id  # it learns where a passage ends


@pytest.mark.parametrize("data_format", ["instruction", "raw_text"])
def test_packing_keeps_every_token_in_order_in_full_blocks(tokenizer, data_format):
    rows = tokenize_records(tokenizer, RECORDS, 1 << 30, data_format).rows
    blocks = pack_rows(rows, 16)
    joined = [t for row in rows for t in row["input_ids"]]
    assert [t for b in blocks for t in b["input_ids"]] == joined
    assert [m for b in blocks for m in b["completion_mask"]] == [m for row in rows for m in row["completion_mask"]]
    assert all(len(b["input_ids"]) == 16 for b in blocks[:-1]) and 0 < len(blocks[-1]["input_ids"]) <= 16
    assert len(blocks) == -(-len(joined) // 16)
