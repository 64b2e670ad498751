"""The app: sections as modes, our themes, the command palette. Kept thin.

``make_app`` is the one factory the CLI, the tests and the benchmark use.
"""

from __future__ import annotations

from pathlib import Path

from textual.app import App

from stylelora_tui.runs import Workspace
from stylelora_tui.screens.commands import CommandsProvider, bindings
from stylelora_tui.screens.dialogs import ConfirmDialog
from stylelora_tui.screens.help import HelpScreen
from stylelora_tui.themes import APP_CSS, DEFAULT_THEME, THEMES
from stylelora_tui.themes.settings import Settings

SCREENS_DIR = Path(__file__).parent
SECTIONS = ("corpus", "config", "train", "compare", "runs")


def _corpus_screen():
    from stylelora_tui.screens.corpus import CorpusScreen

    return CorpusScreen()


def _config_screen():
    from stylelora_tui.screens.config_form import ConfigScreen

    return ConfigScreen()


def _placeholder(section: str):
    def make():
        from stylelora_tui.screens.placeholder import PlaceholderScreen

        return PlaceholderScreen(section)

    return make


class StyleLoraApp(App[int]):
    TITLE = "stylelora-tui"
    CSS_PATH = [APP_CSS, SCREENS_DIR / "corpus.tcss", SCREENS_DIR / "config_form.tcss"]
    COMMANDS = App.COMMANDS | {CommandsProvider}
    BINDINGS = bindings("app")
    MODES = {
        "corpus": _corpus_screen,
        "config": _config_screen,
        "train": _placeholder("train"),
        "compare": _placeholder("compare"),
        "runs": _placeholder("runs"),
    }

    def __init__(self, workspace: Workspace, *, start: str = "corpus", settings: Settings | None = None, save_settings: bool = True) -> None:
        self.start_section = start if start in SECTIONS else "corpus"
        self.DEFAULT_MODE = self.start_section  # the first screen is the start section's: no throw-away default screen
        super().__init__()
        self.workspace = workspace
        self.settings = settings or Settings()
        self.save_settings = save_settings
        self.config_dirty = False  # set by the config screen
        self.sub_title = str(workspace.root)
        for theme in THEMES:
            self.register_theme(theme)
        self.theme = self.settings.theme if self.settings.theme in self.available_themes else DEFAULT_THEME

    def on_mount(self) -> None:
        self.theme_changed_signal.subscribe(self, self._remember_theme)

    def _remember_theme(self, theme) -> None:
        if theme.name == self.settings.theme:
            return
        self.settings.theme = theme.name
        if self.save_settings:
            try:
                self.settings.save()
            except OSError as exc:
                self.notify(f"Could not save settings: {exc}", severity="warning")

    def action_switch_section(self, section: str) -> None:
        self.switch_mode(section)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        if not self.config_dirty:
            self.exit(0)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.exit(0)

        self.push_screen(
            ConfirmDialog("Quit?", "The config form has unsaved changes. Quit and lose them?", yes="Quit", no="Stay"),
            answered,
        )


def make_app(
    workspace: Path | str | Workspace,
    *,
    start: str = "corpus",
    theme: str | None = None,
    save_settings: bool = True,
) -> StyleLoraApp:
    """The app on ``workspace`` (its folders created if missing)."""
    ws = workspace if isinstance(workspace, Workspace) else Workspace(Path(workspace).expanduser().resolve())
    ws.ensure()
    settings = Settings.load()
    if theme:
        settings.theme = theme
    return StyleLoraApp(ws, start=start, settings=settings, save_settings=save_settings)
