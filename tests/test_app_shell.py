"""Pilot tests of the shell: sections on single keys, help, palette, themes, CLI."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from stylelora_tui import paths
from stylelora_tui.screens.app import make_app
from stylelora_tui.screens.commands import COMMANDS, CommandsProvider

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_sections_on_single_keys(tmp_path: Path) -> None:
    app = make_app(tmp_path / "ws")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.current_mode == "corpus"
        for key, mode in (("3", "train"), ("4", "compare"), ("5", "runs"), ("2", "config"), ("1", "corpus")):
            await pilot.press(key)
            await pilot.pause()
            assert app.current_mode == mode
        assert (tmp_path / "ws" / "configs").is_dir() and (tmp_path / "ws" / "runs").is_dir()


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
    settings = paths.config_dir() / "settings.yaml"
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


def test_cli_open_and_demo_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stylelora_tui import app_cli

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
