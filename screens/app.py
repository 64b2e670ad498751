"""The app: sections as modes, our themes, the command palette. Kept thin.

``make_app`` is the one factory the CLI, the tests and the benchmark use.
"""

from __future__ import annotations

import gc
import time
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from textual.app import App
from textual.worker import Worker, WorkerState

from stylelora_tui.screens.commands import SCOPE_TITLES, CommandBindings, CommandsProvider, bindings, check_keymap
from stylelora_tui.screens.commands.app import ChangeTheme, QuitApp, ShowHelp, SwitchSection
from stylelora_tui.screens.messages import WorkerFailed
from stylelora_tui.themes import APP_CSS, DEFAULT_THEME, THEMES
from stylelora_tui.themes.settings import Settings
from stylelora_tui.runs.workspace import Workspace

if TYPE_CHECKING:
    from stylelora_tui.runs.run import Run
    from stylelora_tui.screens.run_watcher import RunWatcher

SCREENS_DIR = Path(__file__).parent
SECTIONS = ("corpus", "config", "train", "compare", "runs", "adapters")
# Each section's stylesheet (its screen's CSS_PATH), read when the section is first shown.
SECTION_CSS = {section: SCREENS_DIR / f"{'config_form' if section == 'config' else section}.tcss" for section in SECTIONS}
FAILURE_REPEAT_S = 10.0  # the same worker failure again within this many seconds is not notified again
# What each worker does, for the failure notification (others are named after their method).
WORKER_TASKS = {
    "run_pipeline": "the corpus pipeline", "run_estimate": "the memory estimate", "prepare_launch": "preparing the launch",
    "do_launch": "the launch", "control": "the run action", "estimate_hint": "the memory hint",
    "run_session": "the generation process", "run_process": "the generation process", "run_style": "the style score", "run_export": "the export",
}


def failure_text(error: BaseException | None) -> str:
    """A worker's error for the user: its type and message, no traceback."""
    if error is None:
        return "no details"
    message = str(error).strip() or "no details"
    return f"{type(error).__name__}: {message}"


def _corpus_screen():
    from stylelora_tui.screens.corpus import CorpusScreen

    return CorpusScreen()


def _config_screen():
    from stylelora_tui.screens.config_form import ConfigScreen

    return ConfigScreen()


def _train_screen():
    from stylelora_tui.screens.train import TrainScreen

    return TrainScreen()


def _runs_screen():
    from stylelora_tui.screens.runs import RunsScreen

    return RunsScreen()


def _adapters_screen():
    from stylelora_tui.screens.adapters import AdaptersScreen

    return AdaptersScreen()


def _compare_screen():
    from stylelora_tui.screens.compare import CompareScreen

    return CompareScreen()


class StyleLoraApp(CommandBindings, App[int]):
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
        "adapters": _adapters_screen,
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
        self.css_variables_applied = self.get_css_variables()  # what the stylesheet is first parsed with
        # The user's [keymap] (command id -> keys): every binding carries its command's id.
        self.keymap, problems = check_keymap(self.settings.keymap)
        self.settings_problems = self.settings.problems + problems
        self.set_keymap(self.keymap)
        self._last_failure: tuple[str, str, float] = ("", "", 0.0)

    def on_mount(self) -> None:
        self.theme_changed_signal.subscribe(self, self._remember_theme)
        for problem in self.settings_problems:
            self.notify(problem, title="settings.toml", severity="warning", timeout=10)

    def refresh_css(self, animate: bool = True) -> None:
        """Re-parse and restyle only when the CSS variables (the theme) changed since the last pass.

        Textual calls this when a mode's screen is first made and when it is
        switched to, even though nothing changed: a full re-parse of every
        stylesheet and a restyle of the app, a tenth of the time to the first
        frame and three passes on the first visit to a section. A new screen is
        styled as it mounts, and a new section's stylesheet is read (and applied)
        by Textual before this is called.
        """
        variables = self.get_css_variables()
        if variables == self.css_variables_applied:
            return
        self.css_variables_applied = variables
        super().refresh_css(animate)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:  # a worker of the app itself
            self.post_message(WorkerFailed(event.worker, ""))

    def on_worker_failed(self, message: WorkerFailed) -> None:
        """Every worker's failure, in one place: a notification naming the section, the task and the cause.

        Workers run with ``exit_on_error=False``, so a failure never ends the app
        nor prints a traceback; the sections hand theirs over (``SectionScreen``).
        """
        worker = message.worker
        section = SCOPE_TITLES.get(message.section, "")
        task = WORKER_TASKS.get(worker.name, worker.name.replace("_", " ") or "a background task")
        title = f"{section}: {task} failed" if section else f"{task} failed".capitalize()
        text = failure_text(worker.error)
        now = time.monotonic()
        if self._last_failure[:2] == (title, text) and now - self._last_failure[2] < FAILURE_REPEAT_S:
            return  # the same failure again (a worker rerun on every change): one notification is enough
        self._last_failure = (title, text, now)
        self.notify(text, title=title, severity="error", timeout=12)

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
            try:
                text = path.read_text(encoding="utf-8-sig")
            except (OSError, UnicodeDecodeError) as exc:
                raise RunError(f"Cannot read the config {path}: {exc}") from exc
            raw = cfg.parse_yaml(text, source=str(path))[0]
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

    def open_compare(self, names: list[str]) -> None:
        """Compare these runs (adapters) with the base in the Compare section."""
        from stylelora_tui.runs.run import Run

        runs = [Run(self.workspace.runs_dir / name) for name in names]
        self.switch_mode("compare")
        if not self.screen.is_mounted and hasattr(self.screen, "requested_runs"):
            self.screen.requested_runs = [str(run.path) for run in runs]  # made just now: it opens these first
            return

        def hand_over(tries: int = 20) -> None:
            screen = self.screen
            if hasattr(screen, "set_runs") and screen.is_mounted:
                screen.set_runs(runs)
            elif tries:
                self.call_after_refresh(hand_over, tries - 1)

        self.call_after_refresh(hand_over)

    def _remember_theme(self, theme) -> None:
        if theme.name == self.settings.theme:
            return
        self.settings.theme = theme.name
        if self.save_settings:
            try:
                self.settings.save()
            except OSError as exc:
                self.notify(f"Could not save settings: {exc}", severity="warning")

    # ----------------------------------------------------------------- commands (commands/app.py)

    def on_switch_section(self, command: SwitchSection) -> None:
        self.switch_mode(command.section)

    def on_show_help(self, _command: ShowHelp) -> None:
        from stylelora_tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def on_change_theme(self, _command: ChangeTheme) -> None:
        self.search_themes()

    async def action_quit(self) -> None:
        """Textual's quit (its palette's "Quit" too) asks first, as the quit command does."""
        self.post_message(QuitApp())

    def on_quit_app(self, _command: QuitApp) -> None:
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
