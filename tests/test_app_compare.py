"""The Compare section on a real tiny trained run: streaming panes, keys, settings, export, errors."""

from __future__ import annotations

import html
import shutil
import time

import pytest
from textual.app import App
from textual.widgets import Input, SelectionList

from stylelora_tui.runs.workspace import Workspace
from stylelora_tui.screens.compare import CompareScreen, SamplePane
from stylelora_tui.screens.compare_dialogs import ExportDialog, RunPicker
from stylelora_tui.screens.dialogs import ChoiceDialog, FieldsDialog
from stylelora_tui.themes import APP_CSS, DEFAULT_THEME, THEMES
from trained_run import trained_run

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

GREEDY = {"temperature": 0, "max_new_tokens": 10, "n": 2, "seed": 0}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tiny_model) -> Workspace:
    """A workspace with copies of the shared trained run (two of them) and a run that has no adapter."""
    run = trained_run(tmp_path_factory, tiny_model)
    root = tmp_path_factory.mktemp("compare-app-ws")
    for name in ("tiny-run", "tiny-run-b"):
        shutil.copytree(run.path, root / "runs" / name, ignore=shutil.ignore_patterns("merged", "checkpoints", "compare.*"))
    bare = root / "runs" / "no-adapter"
    bare.mkdir(parents=True)
    shutil.copy(run.config_path, bare / "config.yaml")
    (root / "configs").mkdir()
    return Workspace(root)


class CompareApp(App):
    """The screen as the app's Compare mode will hold it."""

    CSS_PATH = APP_CSS

    def __init__(self, workspace: Workspace, **kwargs) -> None:
        super().__init__()
        self.workspace = workspace
        self.kwargs = kwargs
        for theme in THEMES:
            self.register_theme(theme)
        self.theme = DEFAULT_THEME

    def on_mount(self) -> None:
        self.add_mode("compare", lambda: CompareScreen(self.workspace, **self.kwargs))
        self.switch_mode("compare")


async def wait_for(pilot, predicate, timeout: float = 90, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            screen = pilot.app.screen
            raise AssertionError(f"timed out waiting for {what}: error={getattr(screen, 'error', '')!r} "
                                 f"activity={getattr(screen, 'activity', '')!r}")
        await pilot.pause(0.05)


def finished(screen: CompareScreen) -> bool:
    return screen.session.current is not None and screen.session.current.finished and screen.gen_job is None


def texts(screen: CompareScreen, variant: str) -> list[str]:
    return [s.text for s in screen.session.current.samples[variant]]


async def test_greedy_samples_stream_browse_regenerate_settings_and_export(workspace, tmp_path):
    app = CompareApp(workspace, runs=["tiny-run"], settings=GREEDY)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        await wait_for(pilot, lambda: finished(screen), what="the first samples")
        process = screen.jobs.client.process
        panes = list(screen.query(SamplePane))
        assert [p.variant for p in panes] == ["base", "tiny-run"]
        assert all(p.text for p in panes), "both panes show a sample"
        assert screen.session.current.label == "held-out 1/4"
        first = {v: texts(screen, v) for v in ("base", "tiny-run")}
        assert all(len(t) == 2 and all(t) for t in first.values())
        assert first["base"] != first["tiny-run"]

        # Next / previous move every pane together (and wrap).
        start = screen.session.index
        await pilot.press("n")
        assert screen.session.index == (start + 1) % 2
        assert panes[1].text == first["tiny-run"][screen.session.index]
        assert panes[0].border_subtitle.startswith(f"{screen.session.index + 1}/2 · seed {screen.session.index}")
        await pilot.press("p")
        assert screen.session.index == start

        # Style reading and held-out losses once the samples are done.
        await wait_for(pilot, lambda: screen.session.style is not None and len(screen.session.losses) == 2, what="scores and losses")
        assert "author" in screen.session.style["reading"] or "not enough text" in screen.session.style["reading"]
        rows = {row[0]: row for row in screen.session.score_rows()}
        assert set(rows) == {"author", "base", "tiny-run"}
        assert screen.session.losses["tiny-run"]["eval_loss"] < screen.session.losses["base"]["eval_loss"]

        # Regenerate: new seeds are recorded; greedy text does not change.
        await pilot.press("r")
        await wait_for(pilot, lambda: finished(screen) and screen.session.current.samples["base"][0].seed == 2, what="regeneration")
        assert [s.seed for s in screen.session.current.samples["tiny-run"]] == [2, 3]
        assert {v: texts(screen, v) for v in first} == first
        assert len(screen.session.items) == 1  # the same prompt: replaced, not added

        # The settings form changes n (and generates again).
        await pilot.press("s")
        assert isinstance(app.screen, FieldsDialog)
        app.screen.query_one("#field-n", Input).value = "3"
        await pilot.press("enter")
        await wait_for(pilot, lambda: finished(screen) and len(screen.session.current.samples["base"]) == 3, what="n = 3")
        assert screen.session.settings["n"] == 3 and all(s.done for s in screen.session.current.samples["tiny-run"])

        # Export: compare.html at a chosen path, every model text escaped.
        screen.session.current.samples["tiny-run"][0].text = '<script>alert("x")</script> & more'
        await pilot.press("e")
        assert isinstance(app.screen, ExportDialog)
        out = tmp_path / "page.html"
        app.screen.query_one("#export-path", Input).value = str(out)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: out.exists() and screen.activity == "exported", what="the export")
        page = out.read_text(encoding="utf-8")
        assert "<script" not in page.lower()
        assert html.escape('<script>alert("x")</script> & more', quote=True) in page
        for text in texts(screen, "base"):
            assert html.escape(text, quote=True) in page
        assert (workspace.runs_dir / "tiny-run" / "compare.json").exists()
    # Closing the app shut the generation process down.
    assert process.wait(timeout=10) is not None


async def test_several_runs_typed_and_held_out_prompts_at_120x40(workspace):
    app = CompareApp(workspace, runs=["tiny-run"], settings={**GREEDY, "n": 1})
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: finished(screen), what="the first samples")

        # Pick a second run in the SelectionList: one more column, one process.
        await pilot.press("u")
        assert isinstance(app.screen, RunPicker)
        choices = app.screen.query_one(SelectionList)
        assert choices.option_count == 2  # the run without adapter is not offered
        await pilot.press("down", "space", "ctrl+s")
        await wait_for(pilot, lambda: finished(screen) and len(screen.session.variants) == 3, what="three columns")
        panes = list(screen.query(SamplePane))
        assert [p.variant for p in panes] == ["base", "tiny-run", "tiny-run-b"]
        assert all(p.text for p in panes)
        assert panes[1].text == panes[2].text  # two copies of one adapter write the same greedy text

        # A typed prompt.
        await pilot.press("t")
        await pilot.press(*"The fog")
        await pilot.press("enter")
        await wait_for(pilot, lambda: finished(screen) and screen.session.current.label == "typed", what="the typed prompt")
        assert all(p.text for p in screen.query(SamplePane))

        # A held-out prompt from the list.
        await pilot.press("h")
        assert isinstance(app.screen, ChoiceDialog)
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: finished(screen) and screen.session.current.label == "held-out 2/4", what="held-out prompt 2")
        assert [item.label for item in screen.session.items] == ["held-out 1/4", "typed", "held-out 2/4"]
        process = screen.jobs.client.process
    assert process.wait(timeout=10) is not None


async def test_a_run_without_adapter_shows_a_clear_message(workspace):
    app = CompareApp(workspace, runs=["no-adapter"], settings=GREEDY)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.error, timeout=60, what="the error")
        assert "has no adapter yet" in screen.error and "Traceback" not in screen.error
        assert screen.query_one("#compare-error").has_class("-shown")
        await pilot.press("r", "n", "e")  # nothing to do: no crash
        assert isinstance(app.screen, CompareScreen)
