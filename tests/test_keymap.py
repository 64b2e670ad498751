"""A user keymap in settings.toml moves a command's key: the new key runs it, help, palette and bars show it."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import recorded_notifications
from rich.console import Console

from stylelora_tui.screens.app import make_app
from stylelora_tui.screens.commands import COMMANDS
from stylelora_tui.themes.settings import Settings

pytestmark = pytest.mark.anyio

KEYMAP = """\
theme = "stylelora-dark"

[keymap]
"section.runs" = "f5"
"corpus.view" = "w"
"app.help" = ["f1", "h"]
"""


def help_text(app) -> str:
    from stylelora_tui.screens.help import help_table

    console = Console(width=140, record=True)
    console.print(help_table(app.keymap))
    return console.export_text()


async def test_a_keymap_in_settings_remaps_commands(tmp_path: Path) -> None:
    Settings.path().parent.mkdir(parents=True, exist_ok=True)
    Settings.path().write_text(KEYMAP, encoding="utf-8")
    app = make_app(tmp_path / "ws", save_settings=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        # The key bar and the title bar's tabs show the new keys, not the declared ones.
        keys = app.screen.query_one("KeyBar").render().plain
        assert " w View " in keys and " v View " not in keys
        tabs = app.screen.query_one("TitleBar").render().plain
        assert "f5 Runs" in tabs and "5 Runs" not in tabs.replace("f5 Runs", "")
        # The new key runs the command; the old one no longer does.
        await pilot.press("w")
        await pilot.pause()
        assert app.screen.query_one("#side").current == "stats"
        await pilot.press("5")
        await pilot.pause()
        assert app.current_mode == "corpus"
        await pilot.press("f5")
        await pilot.pause()
        assert app.current_mode == "runs"
        # Two keys for help, from a TOML list: both open it.
        for key in ("h", "f1"):
            await pilot.press(key)
            await pilot.pause()
            assert type(app.screen).__name__ == "HelpScreen"
            await pilot.press("escape")
            await pilot.pause()
    text = help_text(app)
    runs_line = next(line for line in text.splitlines() if "section.runs" in line)
    assert runs_line.split()[0] == "f5"
    assert next(line for line in text.splitlines() if "app.help" in line).split()[:2] == ["f1,", "h"]
    assert next(line for line in text.splitlines() if "corpus.import" in line).split()[0] == "i"  # not remapped


async def test_the_palette_shows_the_remapped_key(tmp_path: Path) -> None:
    from stylelora_tui.screens.commands import CommandsProvider, command_by_id

    Settings.path().parent.mkdir(parents=True, exist_ok=True)
    Settings.path().write_text(KEYMAP, encoding="utf-8")
    app = make_app(tmp_path / "ws", save_settings=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        provider = CommandsProvider(app.screen)
        assert provider.key_text(command_by_id("section.runs")) == "f5"
        assert provider.key_text(command_by_id("corpus.filter")) == "/"
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Runs")
        await pilot.pause(0.5)
        palette = app.screen
        hits = palette.query_one("CommandList")
        texts = [str(hits.get_option_at_index(i).prompt) for i in range(hits.option_count)]
        assert any("key f5" in text for text in texts), texts


async def test_unknown_commands_and_bad_keys_are_named_and_the_rest_applies(tmp_path: Path) -> None:
    Settings.path().parent.mkdir(parents=True, exist_ok=True)
    Settings.path().write_text('[keymap]\n"section.runz" = "f5"\n"corpus.view" = 3\n"section.train" = "f3"\n', encoding="utf-8")
    app = make_app(tmp_path / "ws", save_settings=False)
    seen = recorded_notifications(app)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        messages = " | ".join(message for _, message, _ in seen)
        assert "no command 'section.runz'" in messages and "keymap 'corpus.view' needs keys" in messages
        await pilot.press("f3")
        await pilot.pause()
        assert app.current_mode == "train"


async def test_changing_the_theme_keeps_the_keymap(tmp_path: Path) -> None:
    Settings.path().parent.mkdir(parents=True, exist_ok=True)
    Settings.path().write_text(KEYMAP, encoding="utf-8")
    app = make_app(tmp_path / "ws")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app.theme = "stylelora-light"
        await pilot.pause()
    saved = Settings.load()
    assert saved.theme == "stylelora-light"
    assert saved.keymap == {"section.runs": "f5", "corpus.view": "w", "app.help": "f1,h"}


def test_settings_round_trip_with_a_keymap() -> None:
    Settings(theme="stylelora-light", keymap={"section.corpus": "f2,ctrl+1", "corpus.filter": "\u00e9"}).save()
    loaded = Settings.load()
    assert loaded.keymap == {"section.corpus": "f2,ctrl+1", "corpus.filter": "\u00e9"} and loaded.problems == []
    Settings.path().write_text('keymap = "f5"\n', encoding="utf-8")
    assert Settings.load().keymap == {} and "must be a table" in Settings.load().problems[0]


def test_every_binding_carries_its_command_id() -> None:
    from stylelora_tui.screens.commands import bindings

    ids = [command.id for command in COMMANDS]
    assert len(ids) == len(set(ids))
    for scope in {command.scope for command in COMMANDS}:
        for binding in bindings(scope):
            assert binding.id in ids


async def test_a_key_taken_from_another_command_is_named(tmp_path: Path) -> None:
    Settings.path().parent.mkdir(parents=True, exist_ok=True)
    Settings.path().write_text('[keymap]\n"corpus.filter" = "x"\n', encoding="utf-8")
    app = make_app(tmp_path / "ws", save_settings=False)
    seen = recorded_notifications(app)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("x")
        await pilot.pause()
        assert app.focused is not None and app.focused.id == "filter"  # x now filters
        await pilot.press("escape")
        await pilot.pause()
        clashes = [message for _, message, _ in seen if "'x'" in message]
        assert clashes == ["keymap: 'x' is now corpus.filter's key; corpus.exclude loses it"]
