"""Pilot tests of the shell: sections on single keys, help, palette, themes, CLI."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

import pytest

from stylelora_tui import paths
from stylelora_tui.screens.app import make_app
from stylelora_tui.screens.commands import COMMANDS, CommandsProvider

pytestmark = pytest.mark.anyio


async def test_sections_on_single_keys(tmp_path: Path) -> None:
    app = make_app(tmp_path / "ws")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.current_mode == "corpus"
        for key, mode in (("3", "train"), ("4", "compare"), ("5", "runs"), ("6", "adapters"), ("2", "config"), ("1", "corpus")):
            await pilot.press(key)
            await pilot.pause()
            assert app.current_mode == mode
        assert (tmp_path / "ws" / "configs").is_dir() and (tmp_path / "ws" / "runs").is_dir()


async def test_a_new_section_is_styled_once_and_in_the_current_theme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from textual.color import Color
    from textual.css.stylesheet import Stylesheet

    from stylelora_tui.themes import LIGHT

    reparses: list[int] = []
    original = Stylesheet.reparse

    def counted(self) -> None:
        reparses.append(len(self.source))
        original(self)

    monkeypatch.setattr(Stylesheet, "reparse", counted)
    app = make_app(tmp_path / "ws", save_settings=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app.theme = "stylelora-light"
        await pilot.pause()
        before = len(reparses)
        await pilot.press("5")  # the Runs section, never shown before
        await pilot.pause()
        assert app.current_mode == "runs"
        # Its own stylesheet is read once; no second full re-parse of everything.
        assert len(reparses) - before == 1
        table = app.screen.query_one("DataTable")
        assert app.screen.styles.background == Color.parse(LIGHT.background)
        assert table.styles.color.hex.lower() == LIGHT.foreground.lower()


async def test_a_section_made_before_a_theme_change_shows_the_new_theme(tmp_path: Path) -> None:
    """The app skips Textual's restyle passes when the theme did not change; a change still reaches every section."""
    from textual.color import Color

    from stylelora_tui.themes import LIGHT

    app = make_app(tmp_path / "ws", save_settings=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        for key in "521":  # Runs and Config made in the dark theme
            await pilot.press(key)
            await pilot.pause()
        app.theme = "stylelora-light"
        await pilot.pause()
        for key in "52":
            await pilot.press(key)
            await pilot.pause()
            assert app.screen.styles.background == Color.parse(LIGHT.background)
            widget = app.screen.query_one("DataTable" if key == "5" else "Input")
            assert widget.styles.color.hex.lower() == LIGHT.foreground.lower()


def test_each_section_stylesheet_is_known_to_the_app() -> None:
    """The app pre-reads the start section's stylesheet: its map must match the screens' own."""
    from stylelora_tui.screens import app as app_module

    screens = {"corpus": ("corpus", "CorpusScreen"), "config": ("config_form", "ConfigScreen"), "train": ("train", "TrainScreen"),
               "compare": ("compare", "CompareScreen"), "runs": ("runs", "RunsScreen"),
               "adapters": ("adapters", "AdaptersScreen")}
    assert set(screens) == set(app_module.SECTIONS) == set(app_module.StyleLoraApp.MODES)
    from stylelora_tui.cli import app as cli_app  # its own copy, to keep Textual out of --help

    assert cli_app.SECTIONS == app_module.SECTIONS
    for section, (module, name) in screens.items():
        cls = getattr(importlib.import_module(f"stylelora_tui.screens.{module}"), name)
        assert Path(cls.CSS_PATH) == app_module.SECTION_CSS[section] and app_module.SECTION_CSS[section].is_file()


async def test_key_bar_shows_the_keys_that_apply_and_a_click_presses_one(tmp_path: Path) -> None:
    app = make_app(tmp_path / "ws", save_settings=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        bar = app.screen.query_one("KeyBar")
        line = bar.render().plain
        # The sections are in the title bar's tabs, so the key bar starts with help and the section's own keys.
        assert line.startswith(" f1 Help i Import / Filter") and line.rstrip().endswith("^p palette")
        assert "Sections" not in line
        assert len(line) == 80 and " r Re-chunk " in line
        await pilot.resize_terminal(50, 24)
        await pilot.pause()
        narrow = bar.render().plain
        # Whole keys only; the rest are in help and the palette.
        assert len(narrow) == 50 and "Re-c" not in narrow and narrow.rstrip().endswith("^p palette")
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        # Typing in the import field: its single-letter keys are not shown (they type), and the bar follows.
        await pilot.press("i")
        await pilot.pause()
        assert " i Import" not in bar.render().plain
        await pilot.press("escape")
        await pilot.pause()
        assert " i Import" in bar.render().plain
        # A click on "f1 Help" opens the help screen.
        x = bar.render().plain.index("f1 Help") + 1
        await pilot.click("KeyBar", offset=(x, 0))
        await pilot.pause()
        assert type(app.screen).__name__ == "HelpScreen"


async def test_title_bar_names_every_section_lights_the_current_one_and_its_icon_opens_the_palette(tmp_path: Path) -> None:
    """A new user sees every section's name and key on the first screen, at 80x24."""
    app = make_app(tmp_path / "ws", save_settings=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        bar = app.screen.query_one("TitleBar")
        line = bar.render().plain
        assert len(line) == 80
        assert line.split()[:13] == ["\u2b58", "1", "Corpus", "2", "Config", "3", "Train", "4", "Compare", "5", "Runs",
                                     "6", "Adapters"]
        # At 80 columns six tabs leave room for the section's name only; wider, the app's name too.
        assert line.rstrip().endswith("  Corpus")
        await pilot.resize_terminal(100, 24)
        await pilot.pause()
        assert app.screen.query_one("TitleBar").render().plain.rstrip().endswith("stylelora-tui \u2014 Corpus")
        await pilot.resize_terminal(80, 24)
        await pilot.pause()

        def lit(bar) -> str:
            text = bar.render()
            current = bar.get_component_rich_style("titlebar--current")
            return "".join(text.plain[span.start:span.end] for span in text.spans if span.style == current).strip()

        assert lit(bar) == "1 Corpus"
        await pilot.press("5")
        await pilot.pause()
        bar = app.screen.query_one("TitleBar")
        assert lit(bar) == "5 Runs" and bar.render().plain.rstrip().endswith("  Runs")
        # A click on a tab opens its section.
        await pilot.click("TitleBar", offset=(bar.render().plain.index("Config"), 0))
        await pilot.pause()
        assert app.current_mode == "config"
        await pilot.click("TitleBar", offset=(1, 0))
        await pilot.pause()
        assert type(app.screen).__name__ == "CommandPalette"


async def test_help_lists_every_key(tmp_path: Path) -> None:
    app = make_app(tmp_path / "ws")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f1")
        await pilot.pause()
        assert type(app.screen).__name__ == "HelpScreen"
        from stylelora_tui.screens.help import help_table
        from rich.console import Console

        console = Console(width=120, record=True)
        console.print(help_table())
        text = console.export_text()
        for command in COMMANDS:
            assert command.help in text
        await pilot.press("escape")
        assert type(app.screen).__name__ == "CorpusScreen"


async def test_palette_holds_the_commands(tmp_path: Path) -> None:
    app = make_app(tmp_path / "ws")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert CommandsProvider in app.COMMANDS
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"config")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert app.current_mode == "config"


async def test_theme_is_remembered(tmp_path: Path) -> None:
    settings = paths.config_dir() / "settings.toml"
    app = make_app(tmp_path / "ws")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.theme == "stylelora-dark"
        assert "stylelora-light" in app.available_themes
        assert not settings.exists()  # nothing written until the user changes something
        app.theme = "stylelora-light"
        await pilot.pause()
    assert "stylelora-light" in settings.read_text()
    again = make_app(tmp_path / "ws")
    assert again.theme == "stylelora-light"


def test_settings_round_trip_and_damaged_file_falls_back() -> None:
    from stylelora_tui.themes.settings import Settings

    Settings(theme='odd "name" \\ é').save()
    assert Settings.load().theme == 'odd "name" \\ é'
    Settings.path().write_text("theme = [unclosed\n", encoding="utf-8")
    assert Settings.load().theme == Settings().theme
    Settings.path().write_bytes(b"\xff\xfe theme")
    assert Settings.load().theme == Settings().theme


def test_cli_open_and_demo_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stylelora_tui.cli import app as app_cli

    ran = []

    class FakeApp:
        return_code = 0

        def run(self):
            ran.append(True)
            return 0

    import stylelora_tui.screens.app as app_module

    def fake_make_app(root, **kwargs):
        ran.append((Path(root), kwargs))
        return FakeApp()

    monkeypatch.setattr(app_module, "make_app", fake_make_app)
    parser = argparse.ArgumentParser()
    app_cli.add_arguments(parser, "open")
    args = parser.parse_args([str(tmp_path / "new-ws"), "--section", "config"])
    args.command = "open"
    assert app_cli.run(args) == 0
    assert ran[0][0] == (tmp_path / "new-ws").resolve() and ran[0][1]["start"] == "config"
    demo = app_cli.demo_workspace()
    assert demo.is_dir()


async def test_cli_start_pauses_garbage_collection_until_the_first_frame(tmp_path: Path) -> None:
    import gc

    from stylelora_tui.cli import app as app_cli
    from stylelora_tui.cli.main import build_parser

    app = app_cli.build_app(build_parser("open").parse_args(["open", str(tmp_path / "ws")]))
    try:
        assert not gc.isenabled()  # the start-up burst is not collected
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            assert gc.isenabled()  # back on once the first frame is up
    finally:
        gc.enable()
    file = tmp_path / "a-file"
    file.write_text("x")
    assert app_cli.build_app(build_parser("open").parse_args(["open", str(file)])) == 2 and gc.isenabled()

