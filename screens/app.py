"""The app: sections as modes, our themes, the command palette. Kept thin.

``make_app`` is the one factory the CLI, the tests and the benchmark use.
"""

from __future__ import annotations

import gc
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from textual.app import App

from stylelora_tui.screens.commands import CommandsProvider, bindings
from stylelora_tui.themes import APP_CSS, DEFAULT_THEME, THEMES
from stylelora_tui.themes.settings import Settings
from stylelora_tui.runs.workspace import Workspace

if TYPE_CHECKING:
    from stylelora_tui.runs.run import Run
    from stylelora_tui.screens.run_watcher import RunWatcher

SCREENS_DIR = Path(__file__).parent
SECTIONS = ("corpus", "config", "train", "compare", "runs")
# Each section's stylesheet (its screen's CSS_PATH), read when the section is first shown.
SECTION_CSS = {section: SCREENS_DIR / f"{'config_form' if section == 'config' else section}.tcss" for section in SECTIONS}


def _styled(screen):
    """``screen``, marked as styled by the current CSS.

    Textual re-parses every stylesheet and restyles the whole app when a mode's
    screen is first made (it cannot know the screen has never been styled). The
    stylesheet already holds the theme's variables and the new screen is styled
    as it mounts, so that pass is wasted: a tenth of the time to the first frame,
    and more on the first visit to each section.
    """
    screen._css_update_count = screen.app._css_update_count
    return screen


def _corpus_screen():
    from stylelora_tui.screens.corpus import CorpusScreen

    return _styled(CorpusScreen())


def _config_screen():
    from stylelora_tui.screens.config_form import ConfigScreen

    return _styled(ConfigScreen())


def _train_screen():
    from stylelora_tui.screens.train import TrainScreen

    return _styled(TrainScreen())


def _runs_screen():
    from stylelora_tui.screens.runs import RunsScreen

    return _styled(RunsScreen())


def _compare_screen():
    from stylelora_tui.screens.compare import CompareScreen

    return _styled(CompareScreen())


class StyleLoraApp(App[int]):
    TITLE = "stylelora-tui"
    # Each section brings its own stylesheet when first shown: less to parse before the first frame.
    CSS_PATH = [APP_CSS]
    COMMANDS = App.COMMANDS | {CommandsProvider}
    BINDINGS = bindings("app")
    MODES = {
        "corpus": _corpus_screen,
        "config": _config_screen,
        "train": _train_screen,
        "compare": _compare_screen,
        "runs": _runs_screen,
    }

    def __init__(self, workspace: Workspace, *, start: str = "corpus", settings: Settings | None = None, save_settings: bool = True) -> None:
        self.start_section = start if start in SECTIONS else "corpus"
        self.DEFAULT_MODE = self.start_section  # the first screen is the start section's: no throw-away default screen
        # The start section's stylesheet is parsed with the app's, not in a second full pass when its screen appears.
        super().__init__(css_path=[APP_CSS, SECTION_CSS[self.start_section]])
        self.workspace = workspace
        self.settings = settings or Settings()
        self.save_settings = save_settings
        self.config_dirty = False  # set by the config screen
        self.config_screen = None  # the config screen, once it exists (it registers itself)
        self.pending_fork: tuple[dict, str] | None = None  # a run's config on its way to the form
        self.sub_title = str(workspace.root)
        for theme in THEMES:
            self.register_theme(theme)
        self.theme = self.settings.theme if self.settings.theme in self.available_themes else DEFAULT_THEME

    def on_mount(self) -> None:
        self.theme_changed_signal.subscribe(self, self._remember_theme)

    def on_ready(self) -> None:
        gc.enable()  # app_cli pauses collection for the start-up burst

    def on_unmount(self) -> None:
        if "watcher" in self.__dict__:
            self.watcher.stop()

    @cached_property
    def watcher(self) -> RunWatcher:
        """One thread following every run of the workspace, started by the first section that needs it."""
        from stylelora_tui.screens.run_watcher import RunWatcher

        watcher = RunWatcher(self.workspace)
        watcher.start()
        return watcher

    # ----------------------------------------------------------------- shared by the sections

    def current_config(self) -> tuple[dict, Path | None]:
        """The Config section's values (or the newest saved config), validated; raises ConfigError or RunError."""
        from stylelora_tui import config as cfg
        from stylelora_tui.runs.run import RunError

        screen = self.config_screen
        if screen is not None and screen.is_mounted:
            raw, path = screen.raw_values(), screen.current_file
        else:
            path = self.workspace.newest_config()
            if path is None:
                raise RunError(f"No config yet: fill in the Config section (2), or save one in {self.workspace.configs_dir}.")
            raw = cfg.parse_yaml(path.read_text(encoding="utf-8-sig"), source=str(path))[0]
        config, problems = cfg.validate(raw, workspace=self.workspace.root, check_paths=True)
        if problems:
            raise cfg.ConfigError(problems)
        return config, path

    def fork_config(self, run: Run) -> None:
        """Clone a run's config into the Config section under a new name (not saved yet)."""
        from stylelora_tui import config as cfg

        try:
            config = run.config()
        except cfg.ConfigError as exc:
            from stylelora_tui.screens.dialogs import MessageDialog

            self.push_screen(MessageDialog("Cannot fork", str(exc), error=True))
            return
        name, counter = f"{run.name}-fork.yaml", 1
        while (self.workspace.configs_dir / name).exists():
            counter += 1
            name = f"{run.name}-fork{counter}.yaml"
        self.pending_fork = (config, name)
        self.switch_mode("config")
        if self.config_screen is not None and self.config_screen.is_mounted:
            self.config_screen.take_fork()

    def open_run(self, name: str) -> None:
        """Show a run in the Train section."""
        self.switch_mode("train")
        self.call_after_refresh(lambda: self.screen.select(name) if hasattr(self.screen, "select") else None)

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
        from stylelora_tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        if not self.config_dirty:
            self.exit(0)
            return
        from stylelora_tui.screens.dialogs import ConfirmDialog

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
