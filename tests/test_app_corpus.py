"""Pilot tests of the Corpus section: import, filter, exclude, sort, re-chunk."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from conftest import recorded_notifications

from stylelora_tui.screens.app import make_app

pytestmark = pytest.mark.anyio
VOCAB = ("lamp tide gull harbour quay stone fog ship rope salt wind swell bell keeper night dawn "
         "letter flour oil brass window stair glass ledger chart current rock reef mast sail").split()


def write_books(folder: Path, files: int = 3, paragraphs: int = 6) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for f in range(files):
        rng = random.Random(f)
        paras = []
        for p in range(paragraphs):
            words = [rng.choice(VOCAB) for _ in range(rng.randint(120, 220))]
            words[0] = f"Chapter{f}para{p}"
            paras.append(" ".join(words) + ".")
        (folder / f"book{f}.txt").write_text("\n\n".join(paras), encoding="utf-8")
    return folder


async def settle(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.pause()


async def import_folder(pilot, folder: Path) -> None:
    await pilot.press("i")
    field = pilot.app.screen.query_one("#import-path")
    assert field.has_focus
    field.value = str(folder)
    await pilot.press("enter")
    await settle(pilot)


async def test_import_filter_exclude(tmp_path: Path) -> None:
    books = write_books(tmp_path / "books")
    app = make_app(tmp_path / "ws")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#passages")
        assert table.row_count == 0
        await import_folder(pilot, books)
        total = table.row_count
        assert total >= 5
        assert (tmp_path / "ws" / "corpus" / "train.jsonl").exists()
        preview = str(app.screen.query_one("#preview-text").render())
        assert "What the model sees" in preview and "plain rendering" in preview

        # Filter by a word only one passage has.
        await pilot.press("slash")
        assert app.screen.query_one("#filter").has_focus
        await pilot.press(*"chapter1para2")
        await pilot.pause()
        assert table.row_count == 1
        await pilot.press("enter")  # back to the table
        assert table.has_focus

        # Exclude it, then include it again.
        await pilot.press("x")
        await settle(pilot)
        passage = app.screen.current_passage()
        assert passage.excluded and "excl" in table.get_row_at(0)
        await pilot.press("x")
        await settle(pilot)
        assert not app.screen.current_passage().excluded

        # Clearing the filter shows everything again.
        app.screen.query_one("#filter").value = ""
        await pilot.pause()
        assert table.row_count == total


async def test_sort_views_and_rechunk(tmp_path: Path) -> None:
    books = write_books(tmp_path / "books")
    app = make_app(tmp_path / "ws")
    async with app.run_test(size=(80, 24)) as pilot:
        await import_folder(pilot, books)
        screen = app.screen
        table = screen.query_one("#passages")
        await pilot.press("s")  # same column, reversed
        assert screen.sort_reverse and table.get_row_at(0)[0] == max(p.n for p in screen.corpus.passages)
        await pilot.press("s")  # next column
        assert screen.sort_column == "source" and not screen.sort_reverse

        switcher = screen.query_one("#side")
        await pilot.press("v")
        assert switcher.current == "stats"
        stats = str(screen.query_one("#stats-text").render())
        assert "Passage length" in stats and "Duplicates dropped" in stats
        await pilot.press("v")
        assert switcher.current == "sources"
        assert screen.query_one("#sources").row_count == 3

        before = len(screen.corpus.passages)
        await pilot.press("r")
        dialog = app.screen
        dialog.query_one("#field-max_words").value = "150"
        dialog.query_one("#field-min_words").value = "60"
        await pilot.press("enter")
        await settle(pilot)
        assert app.screen is screen
        assert screen.corpus.options.max_words == 150
        assert len(screen.corpus.passages) > before
        # The views built on demand follow the new corpus; the progress row is hidden again.
        sources = screen.query_one("#sources")
        assert sum(sources.get_row_at(i)[1] for i in range(sources.row_count)) == len(screen.corpus.passages)
        assert f"Passages {len(screen.corpus.passages)} " in str(screen.query_one("#stats-text").render())
        assert screen.query_one("#progress").progress == 1.0 and not screen.query_one("#progress-row").display


async def test_bad_path_and_empty_folder(tmp_path: Path) -> None:
    app = make_app(tmp_path / "ws")
    async with app.run_test(size=(80, 24)) as pilot:
        notes = recorded_notifications(app)
        await import_folder(pilot, tmp_path / "missing")
        assert any("No such file" in message for _, message, _ in notes)
        (tmp_path / "empty").mkdir()
        await import_folder(pilot, tmp_path / "empty")
        assert type(app.screen).__name__ == "MessageDialog"
        await pilot.press("escape")
        assert type(app.screen).__name__ == "CorpusScreen"


def test_chat_template_rendered_without_transformers(tmp_path: Path) -> None:
    from stylelora_tui.prompting import chat_renderer

    model = tmp_path / "my-model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "llama"}))
    template = "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
    (model / "tokenizer_config.json").write_text(json.dumps({"chat_template": template, "bos_token": "<s>", "eos_token": "</s>"}))
    render, note = chat_renderer(str(model))
    assert render is not None, note
    text = render({"instruction": "Continue:", "input": "The sea", "output": "was grey."})
    assert text == "<s><|user|>Continue:\n\nThe sea<|end|><|assistant|>was grey.</s>"
    render, note = chat_renderer("nobody/unknown-model")
    assert render is None and "plain rendering" in note


async def test_table_holds_a_bounded_number_of_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A corpus of forty novels must not freeze the app: the table holds MAX_ROWS, sort and filter reach the rest."""
    from stylelora_tui.screens import corpus as corpus_screen

    monkeypatch.setattr(corpus_screen, "MAX_ROWS", 5)
    books = write_books(tmp_path / "books", files=3, paragraphs=6)
    app = make_app(tmp_path / "ws")
    async with app.run_test(size=(80, 24)) as pilot:
        await import_folder(pilot, books)
        screen = app.screen
        table = screen.query_one("#passages")
        total = len(screen.corpus.passages)
        assert total > 5 and table.row_count == 5
        assert table.border_title.startswith(f"first 5 of {total}/{total}")
        assert "the table holds 5" in str(screen.query_one("#corpus-status").render())
        await pilot.press("s")  # reversed: the last passages come first
        assert table.get_row_at(0)[0] == max(p.n for p in screen.corpus.passages)
        screen.query_one("#filter").value = "Chapter2para"
        await settle(pilot)
        assert table.row_count == sum("Chapter2para" in p.text for p in screen.corpus.passages) <= 5
