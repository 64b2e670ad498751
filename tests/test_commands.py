"""Commands are typed messages declared once: each key and palette entry posts one, a typed handler takes it."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
from textual.app import App
from textual.message import Message
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Input

from stylelora_tui.screens.app import StyleLoraApp, make_app
from stylelora_tui.screens.commands import COMMANDS, SCOPE_TITLES, Command, CommandsProvider, bindings
from stylelora_tui.screens.commands.app import QuitApp, ShowHelp, ShowRuns, SwitchSection
from stylelora_tui.screens.commands.config import NextField, PreviousField
from stylelora_tui.screens.commands.corpus import CycleSidePane
from stylelora_tui.screens.adapters import AdaptersScreen
from stylelora_tui.screens.compare import CompareScreen
from stylelora_tui.screens.config_form import ConfigScreen
from stylelora_tui.screens.corpus import CorpusScreen
from stylelora_tui.screens.runs import RunsScreen
from stylelora_tui.screens.section import SectionScreen
from stylelora_tui.screens.train import TrainScreen

pytestmark = pytest.mark.anyio

NODES: dict[str, type] = {
    "app": StyleLoraApp, "corpus": CorpusScreen, "config": ConfigScreen, "train": TrainScreen,
    "compare": CompareScreen, "runs": RunsScreen, "adapters": AdaptersScreen,
}


def declared_commands(base: type = Command) -> set[type[Command]]:
    """Every Command subclass that declares a command (has an id), however deep."""
    found = set()
    for sub in base.__subclasses__():
        if sub.__dict__.get("id"):
            found.add(sub)
        found |= declared_commands(sub)
    return found


def test_every_command_is_declared_once_with_its_metadata() -> None:
    ids = [command.id for command in COMMANDS]
    assert len(ids) == len(set(ids))
    assert set(COMMANDS) == declared_commands()  # none declared and forgotten by the registry
    assert set(NODES) == set(SCOPE_TITLES)
    for command in COMMANDS:
        assert issubclass(command, Message) and command.key and command.title and command.help, command.id
        assert command.scope in NODES, command.id
        binding = command.binding()
        # The one generic action, naming the command by id: no per-command action string.
        assert (binding.id, binding.action, binding.description) == (command.id, f"command({command.id!r})", command.title)
        assert (binding.show, binding.priority, binding.tooltip) == (command.footer, command.priority, command.help)
    for scope, node in NODES.items():
        # A screen's keys are exactly its commands' (the app's: Textual's own kept beside them).
        declared = {binding.id for binding in bindings(scope)}
        assert declared == {command.id for command in COMMANDS if command.scope == scope}
        assert declared <= {binding.id for binding in node.BINDINGS}


def test_every_command_has_a_typed_handler_on_the_node_of_its_scope() -> None:
    textual_names = set(dir(App)) | set(dir(Screen)) | set(dir(Widget))
    for command in COMMANDS:
        node = NODES[command.scope]
        handler = getattr(node, command.handler_name, None)
        assert handler is not None, f"{node.__name__} has no {command.handler_name} for {command.id}"
        assert command.handler_name not in textual_names, f"{command.handler_name} is a Textual name"
        assert handler.__module__.startswith("stylelora_tui.screens."), handler
        hints = typing.get_type_hints(handler)
        message_type = next(hint for name, hint in hints.items() if name != "return")
        assert issubclass(command, message_type) and message_type is not Command, (command.id, message_type)
    # One handler for a family: every section's command opens its own section.
    sections = [command for command in COMMANDS if issubclass(command, SwitchSection)]
    assert [command.section for command in sections] == ["corpus", "config", "train", "compare", "runs", "adapters"]
    assert {command.handler_name for command in sections} == {"on_switch_section"}


async def settle(app, pilot) -> None:
    """Let the command's handler, any worker it started and any dialog it opened finish; close the dialogs."""
    for _ in range(3):
        await pilot.pause()
        await app.workers.wait_for_complete()
    for _ in range(5):
        if isinstance(app.screen, SectionScreen):
            return
        await pilot.press("escape")
        await pilot.pause()
    assert isinstance(app.screen, SectionScreen), app.screen


async def test_each_key_posts_its_typed_command_on_its_screen(tmp_path: Path) -> None:
    posted: list[Message] = []
    app = make_app(tmp_path / "ws", save_settings=False)
    async with app.run_test(size=(100, 30), message_hook=posted.append) as pilot:
        await pilot.pause()
        for scope in ("corpus", "config", "train", "compare", "runs", "adapters", "app"):
            app.switch_mode("corpus" if scope == "app" else scope)
            await pilot.pause()
            for command in [c for c in COMMANDS if c.scope == scope and c is not QuitApp]:
                app.screen.set_focus(None)
                if command in (NextField, PreviousField):  # bound on the form's column: a field has focus
                    app.screen.query_one("FieldList Input", Input).focus()
                await pilot.pause()
                posted.clear()
                await pilot.press(command.key.split(",")[0])
                await settle(app, pilot)
                assert any(type(message) is command for message in posted), (command.id, posted)
                if issubclass(command, SwitchSection):
                    assert app.current_mode == command.section
                    app.switch_mode("corpus")
                    await pilot.pause()
        posted.clear()
        await pilot.press("ctrl+q")
        await pilot.pause()
    assert any(type(message) is QuitApp for message in posted) and app.return_code == 0


async def test_the_up_and_down_keys_of_the_form_move_between_fields(tmp_path: Path) -> None:
    app = make_app(tmp_path / "ws", start="config", save_settings=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        first = app.screen.query_one("FieldList Input", Input)
        first.focus()
        await pilot.pause()
        await pilot.press("down")
        await pilot.pause()
        assert app.focused is not first and app.focused is not None
        await pilot.press("up")
        await pilot.pause()
        assert app.focused is first


async def run_from_palette(app, pilot, command: type[Command]) -> None:
    """Pick ``command`` in the palette's provider, as a click on its entry does."""
    provider = CommandsProvider(app.screen)
    hits = [hit async for hit in provider.search(command.title)]
    hit = next(hit for hit in hits if str(hit.text) == f"{SCOPE_TITLES[command.scope]}: {command.title}")
    hit.command()
    await pilot.pause()


async def test_the_palette_does_what_the_key_does(tmp_path: Path) -> None:
    posted: list[Message] = []
    app = make_app(tmp_path / "ws", save_settings=False)
    async with app.run_test(size=(80, 24), message_hook=posted.append) as pilot:
        await pilot.pause()
        effects = {
            ShowRuns: lambda: app.current_mode,
            ShowHelp: lambda: type(app.screen).__name__,
            CycleSidePane: lambda: app.screen.query_one("#side").current,
        }
        for command, effect in effects.items():
            seen = {}
            for way in ("key", "palette"):
                posted.clear()
                if way == "key":
                    await pilot.press(command.key.split(",")[0])
                    await pilot.pause()
                else:
                    await run_from_palette(app, pilot, command)
                # Each command once (a message is seen again as it bubbles up to the app, unhandled there).
                commands = {id(message): type(message) for message in posted if isinstance(message, Command)}
                seen[way] = (effect(), list(commands.values()))
                # Back to where it started: the corpus section, no dialog, the first pane.
                while not isinstance(app.screen, SectionScreen):
                    app.pop_screen()
                app.switch_mode("corpus")
                await pilot.pause()
                if command is CycleSidePane:
                    await app.screen.show_view("preview")
                await pilot.pause()
            assert seen["key"] == seen["palette"] == (seen["key"][0], [command]), seen
        assert seen["key"][0] == "stats"


async def test_textuals_quit_asks_first_as_the_quit_command_does(tmp_path: Path) -> None:
    """Textual's own quit (its palette's "Quit the application") posts the quit command too."""
    app = make_app(tmp_path / "ws", save_settings=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app.config_dirty = True
        await app.action_quit()
        await pilot.pause()
        assert type(app.screen).__name__ == "ConfirmDialog"
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert type(app.screen).__name__ == "ConfirmDialog" and app.is_running


async def test_the_run_step_commands_carry_their_direction(tmp_path: Path) -> None:
    from stylelora_tui import config as config_mod
    from stylelora_tui.runs.control import create_run
    from stylelora_tui.runs.workspace import Workspace

    workspace = Workspace(tmp_path)
    workspace.ensure()
    for name in ("20250101-000000-a", "20250102-000000-b", "20250103-000000-c"):
        create_run(workspace, config_mod.defaults(), name=name)
    app = make_app(tmp_path, start="train", save_settings=False)
    async with app.run_test(size=(80, 24)) as pilot:
        for _ in range(100):
            if len(app.watcher.names()) == 3:
                break
            await pilot.pause(0.05)
        screen = app.screen
        assert screen.current_name() == "20250103-000000-c"  # the newest
        await pilot.press("left_square_bracket")
        await pilot.pause()
        assert screen.current_name() == "20250102-000000-b"
        await pilot.press("right_square_bracket", "right_square_bracket")
        await pilot.pause()
        assert screen.current_name() == "20250101-000000-a"  # wraps around
