"""The forgetting check's text and arithmetic (the model side is in test_generation and test_compare_html)."""

from __future__ import annotations

import json

import pytest

from stylelora_tui.compare.forgetting import (
    BUILT_IN, FORGETTING_THRESHOLD, PASSAGE_WORDS, GeneralTextError, forgetting_line, forgetting_report, general_passages,
    general_records,
)


def test_the_built_in_sample_is_twelve_clean_passages_that_ship_with_the_package() -> None:
    passages = general_passages()
    assert len(passages) == 12 and all(140 <= len(p.split()) <= PASSAGE_WORDS for p in passages)
    assert not any("##" in p or "<!--" in p or "CC0" in p for p in passages)  # headings and the licence note are not scored
    assert passages[0].startswith("The city council voted") and passages[-1].endswith("before the infection takes hold.")
    from importlib.resources import files

    assert files("stylelora_tui.data").joinpath(BUILT_IN.name).is_file()  # package data, not a repo-only file
    records = general_records()
    assert records[0] == {"id": "general-1", "input": "", "output": passages[0]}


def test_a_users_text_file_is_cut_into_paragraphs_and_long_ones_into_passages(tmp_path) -> None:
    long = " ".join(f"w{i}" for i in range(PASSAGE_WORDS + 10))
    path = tmp_path / "news.txt"
    path.write_text(f"First paragraph\nover two lines.\n\n   \n{long}\n\n", encoding="utf-8")
    assert general_passages(path) == ["First paragraph over two lines.", " ".join(long.split()[:PASSAGE_WORDS]),
                                      " ".join(long.split()[PASSAGE_WORDS:])]


def test_a_jsonl_file_gives_its_text_fields_and_a_bad_line_is_named(tmp_path) -> None:
    path = tmp_path / "general.jsonl"
    path.write_text(json.dumps({"text": "One."}) + "\n\n" + json.dumps({"output": "Two."}) + "\n", encoding="utf-8")
    assert general_passages(path) == ["One.", "Two."]
    path.write_text(json.dumps({"text": "One."}) + "\n{oops\n", encoding="utf-8")
    with pytest.raises(GeneralTextError, match=r"general\.jsonl, line 2: not JSON"):
        general_passages(path)
    path.write_text(json.dumps({"title": "no text"}) + "\n", encoding="utf-8")
    with pytest.raises(GeneralTextError, match=r"line 1: no 'text' \(or 'output'\) string"):
        general_passages(path)


@pytest.mark.parametrize(("content", "why"), [(None, "no such file"), (b"\xff\xfe\x00bad", "cannot be read as UTF-8"),
                                              (b"\n\n  \n", "no text in it")])
def test_an_unusable_file_is_refused_naming_it(tmp_path, content, why) -> None:
    path = tmp_path / "general.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(GeneralTextError, match=why) as caught:
        general_passages(path)
    assert str(path) in str(caught.value)


def test_the_report_flags_a_rise_over_the_threshold_only() -> None:
    general = {"base": {"eval_loss": 3.0}, "a": {"eval_loss": 3.0 * (1 + FORGETTING_THRESHOLD) - 0.01},
               "b": {"eval_loss": 3.0 * (1 + FORGETTING_THRESHOLD) + 0.01}, "c": {"eval_loss": 2.7}, "d": {"eval_loss": None}}
    held_out = {"base": {"eval_loss": 4.0}, "a": {"eval_loss": 3.0}}
    report = forgetting_report(general, held_out, "base", "built-in")
    sides = report["variants"]
    assert set(sides) == {"a", "b", "c"}  # no figure, no verdict
    assert not sides["a"]["flagged"] and sides["b"]["flagged"] and not sides["c"]["flagged"]
    assert sides["c"]["change"] == pytest.approx(-0.1)
    assert sides["a"]["held_out_change"] == pytest.approx(-0.25) and sides["b"]["held_out_change"] is None
    assert forgetting_line(report, "c") == "general English: loss 3.000 -> 2.700 (-10.0%), within 5%"
    assert forgetting_line(report, "b") == "general English: loss 3.000 -> 3.160 (+5.3%): over 5%, forgetting"
    assert forgetting_line(report, "d") == "" and forgetting_line(None, "a") == ""
    assert forgetting_report({"a": {"eval_loss": 3.0}}, held_out, "base", "x") is None  # no base figure yet
