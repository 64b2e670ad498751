"""The Compare section on a real tiny trained run: streaming panes, keys, settings, export, errors."""

from __future__ import annotations

import html
import json
import io
import os
import shutil
import time
from pathlib import Path

import pytest
from textual.app import App
from rich.console import Console
from textual.widgets import Input, SelectionList, Static

from conftest import recorded_notifications
from stylelora_tui.compare.publish import save_compare_json
from stylelora_tui.compare.forgetting import forgetting_report
from stylelora_tui.compare.session import build_result, held_out_records, prompt_item
from stylelora_tui.generation.protocol import SAMPLING_DEFAULTS
from stylelora_tui.runs.workspace import Workspace
from stylelora_tui.screens.compare import CompareScreen, SamplePane
from stylelora_tui.screens.compare_widgets import ScoreTable
from stylelora_tui.screens.compare_dialogs import ExportDialog, RunPicker
from stylelora_tui.screens.dialogs import ChoiceDialog, FieldsDialog
from stylelora_tui.themes import APP_CSS, DEFAULT_THEME, THEMES
from trained_run import trained_run

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

GREEDY = {"temperature": 0, "max_new_tokens": 10, "n": 2, "seed": 0}


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
        await wait_for(pilot, lambda: screen.session.style is not None and len(screen.session.losses) == 2
                       and len(screen.session.general_losses) == 2, what="scores, held-out and general-text losses")
        assert "author" in screen.session.style["reading"] or "not enough text" in screen.session.style["reading"]
        rows = {row[0]: row for row in screen.session.score_rows()}
        assert set(rows) == {"author", "base", "tiny-run"}
        assert screen.session.losses["tiny-run"]["eval_loss"] < screen.session.losses["base"]["eval_loss"]
        await pilot.pause()
        general = screen.session.general_losses
        assert f"general English: loss {general['base']['eval_loss']:.3f} -> {general['tiny-run']['eval_loss']:.3f}" in rendered(
            screen.query_one(ScoreTable))  # the forgetting check, at 80x24

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


# --------------------------------------------------------------------------- a saved comparison


def generation_children() -> list[int]:
    """Pids of this process's children running the generation server (read from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and b"stylelora_tui.generation" in command:
            found.append(int(stat.parent.name))
    return found


def rendered(widget: Static) -> str:
    console = Console(width=120, file=io.StringIO(), record=True)
    console.print(widget.content)
    return console.export_text()


@pytest.fixture
def saved_workspace(tmp_path, tmp_path_factory, tiny_model) -> Workspace:
    """A workspace with one trained run, "saved-run", whose compare.json is not written yet."""
    run = trained_run(tmp_path_factory, tiny_model)
    root = tmp_path / "ws"
    shutil.copytree(run.path, root / "runs" / "saved-run", ignore=shutil.ignore_patterns("merged", "checkpoints", "compare.*"))
    (root / "configs").mkdir()
    return Workspace(root)


def write_saved(workspace: Workspace) -> dict:
    """A compare.json in the result format, with texts no model would write (so what is shown is the file's)."""
    run = workspace.find_run("saved-run")
    variants = ["base", "saved-run"]
    samples = {v: [{"seed": i, "text": f"{v} saved sample {i}", "tokens": 4, "stopped": "eos"} for i in range(2)] for v in variants}
    scores = {"delta": 0.5, "mean_sentence_length": 9.0, "mattr": 0.7}
    general = {"base": {"eval_loss": 3.0, "perplexity": 20.1, "tokens": 900}, "saved-run": {"eval_loss": 3.3, "perplexity": 27.1, "tokens": 900}}
    result = build_result(
        run_name="saved-run", ready={"model": "/models/tiny", "device": "cpu"}, settings={**SAMPLING_DEFAULTS, **GREEDY},
        variants=variants, items=[prompt_item(held_out_records(run)[1], samples, variants)],
        style={"reading": "saved reading: closer to the author", "author": scores, "variants": {v: scores for v in variants}},
        losses={"base": {"eval_loss": 4.25, "perplexity": 70.1, "tokens": 9}, "saved-run": {"eval_loss": 3.75, "perplexity": 42.5, "tokens": 9}},
        config=run.config(), general=general,
        forgetting=forgetting_report(general, {}, "base", "built-in general English sample"),
    )
    save_compare_json(result, [run])
    return result


async def test_a_saved_comparison_is_shown_at_once_and_r_generates_again(saved_workspace):
    result = write_saved(saved_workspace)
    app = CompareApp(saved_workspace)  # as the app opens the section: the newest run, no settings asked for
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        await pilot.pause()
        panes = list(screen.query(SamplePane))
        assert [p.text for p in panes] == ["base saved sample 0", "saved-run saved sample 0"]
        assert panes[0].border_subtitle == "1/2 · seed 0 · 4 tok · eos"
        assert screen.jobs is None and generation_children() == []  # no generation process was started
        status = str(screen.query_one("#compare-status").render())
        assert f"saved {result['created']} (compare.json) · r: generate again" in status
        assert "held-out 2/4" in str(screen.query_one("#compare-prompt").render())
        scores = rendered(screen.query_one(ScoreTable))
        assert "saved reading: closer to the author" in scores and "4.250" in scores and "3.750" in scores and "3.300" in scores
        assert "general English: loss 3.000 -> 3.300 (+10.0%): over 5%" in scores

        await pilot.press("n")  # browsing the saved samples
        assert [p.text for p in panes] == ["base saved sample 1", "saved-run saved sample 1"]
        await pilot.pause(0.3)
        assert screen.jobs is None and generation_children() == []

        await pilot.press("r")  # the same prompt generated again, with the next seeds
        assert screen.jobs is not None
        await wait_for(pilot, lambda: finished(screen) and not screen.session.current.saved, what="the regeneration")
        assert generation_children() != []  # the helper sees the process it said was not there
        assert [s.seed for s in screen.session.current.samples["saved-run"]] == [2, 3]
        assert "held-out 2/4" == screen.session.current.label and len(screen.session.items) == 1
        assert all(p.text and "saved sample" not in p.text for p in panes)
        process = screen.jobs.client.process
    assert process.wait(timeout=10) is not None


async def test_a_damaged_saved_comparison_is_named_and_the_section_generates(saved_workspace):
    path = saved_workspace.runs_dir / "saved-run" / "compare.json"
    path.write_text('{"created": "2026-12-01 10:00", "settings": ', encoding="utf-8")
    app = CompareApp(saved_workspace, runs=["saved-run"], settings=GREEDY)
    notes = recorded_notifications(app)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: finished(screen), what="samples generated afresh")
        warnings = [message for _, message, severity in notes if severity == "warning"]
        assert len(warnings) == 1 and warnings[0].startswith(f"{path} is damaged (not JSON: ")
        assert "generating afresh" in warnings[0] and "Traceback" not in warnings[0]
        assert screen.session.saved is None and all(p.text for p in screen.query(SamplePane))
        assert screen.error == ""


# --------------------------------------------------------------------------- several sides, several authors


async def test_four_sides_take_turns_at_80_columns_and_each_author_is_scored(tmp_path, tmp_path_factory, tiny_model):
    from stylelora_tui import config as config_mod
    from stylelora_tui.screens.compare_widgets import SamplePanes

    run = trained_run(tmp_path_factory, tiny_model)
    root = tmp_path / "ws"
    for name in ("a", "b", "c"):
        shutil.copytree(run.path, root / "runs" / name, ignore=shutil.ignore_patterns("merged", "checkpoints", "compare.*"))
    # c learned another author: its config names a second corpus (the adapter is a copy, the author is not).
    other = root / "kitchen"
    shutil.copytree(Path(run.config()["data"]["corpus"]), other)
    with open(other / "eval.jsonl", "w", encoding="utf-8") as handle:
        for text in ("Honestly, I never meant to bake that much bread, but my grandmother always said so, and I believed her.",
                     "I think the trick, and I really do think it is a trick, is that you let the butter get just soft enough."):
            handle.write(json.dumps({"instruction": "Continue in the author's style:", "input": text[:20], "output": text}) + "\n")
    cfg = config_mod.load(root / "runs" / "c" / "config.yaml", check_paths=False)
    cfg["data"]["corpus"] = str(other)
    config_mod.save(root / "runs" / "c" / "config.yaml", cfg)
    (root / "configs").mkdir()

    app = CompareApp(Workspace(root), runs=["a", "b", "c"], settings={**GREEDY, "n": 1})
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: finished(screen), what="the first samples")
        panes = {p.variant: p for p in screen.query(SamplePane)}
        shown = lambda: [v for v, p in panes.items() if p.display]  # noqa: E731
        assert list(panes) == ["base", "a", "b", "c"] and screen.query_one(SamplePanes).cycling
        assert shown() == ["base", "a"] and panes["a"].border_title == "1/3 a (v: next)"
        assert all(p.text for p in panes.values())  # every side generated, shown or not
        await pilot.press("v")
        assert shown() == ["base", "b"] and panes["b"].has_focus and panes["b"].border_title == "2/3 b (v: next)"
        await pilot.press("v", "v")
        assert shown() == ["base", "a"]  # round again

        await wait_for(pilot, lambda: (screen.session.style or {}).get("by_author"), what="the per-author scores")
        authors = screen.session.style["by_author"]
        assert [(e["author"], e["runs"]) for e in authors] == [("corpus", ["a", "b"]), ("kitchen", ["c"])]
        scores = rendered(screen.query_one(ScoreTable))
        assert "to corpus (a, b): Delta base " in scores and "to kitchen (c): Delta base " in scores

        await pilot.resize_terminal(120, 30)  # wide enough for four panes: every side shown, no turns
        await pilot.pause()
        assert shown() == ["base", "a", "b", "c"] and panes["c"].border_title == "c (adapted)"
        process = screen.jobs.client.process
    assert process.wait(timeout=10) is not None

    app = CompareApp(Workspace(root), runs=["a", "b"], settings={**GREEDY, "n": 1})
    async with app.run_test(size=(80, 24)) as pilot:  # three sides fit 80 columns side by side
        screen = app.screen
        await wait_for(pilot, lambda: finished(screen), what="three sides")
        assert [p.variant for p in screen.query(SamplePane) if p.display] == ["base", "a", "b"]
        assert not screen.query_one(SamplePanes).cycling
        process = screen.jobs.client.process
    assert process.wait(timeout=10) is not None
