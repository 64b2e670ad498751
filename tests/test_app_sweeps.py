"""Sweeps in the app: a sweep's table in the Runs section, and starting a sweep from the Config form.

The table's data are hand-made runs (events written by the real event writer,
trials in a real Optuna journal: test_sweeps.three_trials); the app is driven
with a Pilot at 80x24.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable, Static

from stylelora_tui.screens.app import make_app
from stylelora_tui.screens.dialogs import ChoiceDialog
from stylelora_tui.screens.loss_chart import LossChart
from stylelora_tui.screens.train import TrainScreen
from pilot_helpers import wait_until
from test_sweeps import three_trials

pytestmark = pytest.mark.anyio


def column(table: DataTable, index: int) -> list[str]:
    return [str(table.get_row_at(row)[index]) for row in range(table.row_count)]


def status(app) -> str:
    return str(app.screen.query_one("#runs-status", Static).content)


@pytest.mark.parametrize("theme", ["stylelora-dark", "stylelora-light", "ansi-dark"])
async def test_the_sweep_table_sorts_by_keyboard_marks_the_best_and_overlays_every_trial(tmp_path: Path, theme: str) -> None:
    three_trials(tmp_path)
    app = make_app(tmp_path, start="runs", save_settings=False, theme=theme)
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.theme == theme
        table = app.screen.query_one(DataTable)
        await wait_until(pilot, lambda: table.row_count == 3)
        await pilot.press("w")  # the only sweep: shown at once
        await wait_until(pilot, lambda: table.row_count == 3 and "Params" in str(table.columns[table.ordered_columns[2].key].label))
        await wait_until(pilot, lambda: column(table, 1) == ["1", "2", "3"])
        assert column(table, 0) == [" ", "*", " "]  # trial 2 has the lowest best eval loss
        # Steps: "-" here, as these hand-made runs' status.json has no step count.
        assert [str(c) for c in table.get_row_at(1)[2:]] == ["r=8", "completed", "-", "1.4000", "1.2000", "0.700c", "1m05s", "512M"]
        assert [str(c) for c in table.get_row_at(0)[5:]] == ["2.1000", "1.5000", "0.800", "0m40s", "3.0G"]
        assert column(table, 6)[2] == "-"
        chart = app.screen.query_one(LossChart)
        await wait_until(pilot, lambda: len(chart.series) == 3)
        assert [s.label for s in chart.series] == ["r=4", "* r=8", "r=16"]
        assert chart.series[1].values == [2.0, 1.4]
        assert "lab-" in status(app) and "by trial" in status(app)

        # The table follows the runs: trial 3 gets its first held-out loss.
        from stylelora_tui.runs.events import EventWriter

        with EventWriter(tmp_path / "runs" / "lab-03-r16" / "events.jsonl") as writer:
            writer.write("eval", step=1, eval_loss=1.25)
        await wait_until(pilot, lambda: column(table, 6)[2] == "1.2500")
        assert column(table, 0) == [" ", "*", " "]  # 1.2 is still the best

        await pilot.press("o")  # by best eval loss, lowest first
        await pilot.pause()
        assert column(table, 1) == ["2", "3", "1"] and "Eval^" in [str(c.label) for c in table.columns.values()]
        assert "by best eval, lowest first" in status(app)
        await pilot.press("r")  # highest first
        await pilot.pause()
        assert column(table, 1) == ["1", "3", "2"] and "Eval" + "v" in [str(c.label) for c in table.columns.values()]
        await pilot.press("o")  # final train loss, still highest first
        await pilot.pause()
        assert column(table, 1) == ["3", "1", "2"]
        await pilot.press("o")  # style distance: trial 3 has none, so it goes last either way
        await pilot.pause()
        assert column(table, 1) == ["1", "2", "3"] and "style, highest first" in status(app)
        await pilot.press("r")  # compare.json's 0.7 for trial 2 beats its live sample's 1.1
        await pilot.pause()
        assert column(table, 1) == ["2", "1", "3"]

        # Enter opens a trial's run in the Train section, like any run.
        table.move_cursor(row=0)
        await pilot.pause()
        assert status(app).startswith("lab-02-r8")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, TrainScreen) and app.screen.view is not None)
        assert app.screen.view.name == "lab-02-r8"
        await pilot.press("5")
        await wait_until(pilot, lambda: not isinstance(app.screen, TrainScreen))
        table = app.screen.query_one(DataTable)
        await wait_until(pilot, lambda: column(table, 1) == ["2", "1", "3"])  # still the sweep, as it was sorted
        await pilot.press("space")  # marked trials only, once some are marked
        await pilot.pause()
        assert [s.label for s in app.screen.query_one(LossChart).series] == ["* r=8"]
        await pilot.press("w")  # back to every run, with the run columns
        await wait_until(pilot, lambda: table.row_count == 3 and column(table, 1)[0].startswith("lab-"))
        assert str(table.ordered_columns[1].label) == "Run"
        await pilot.press("o")  # no sweep shown: a hint, nothing breaks
        await pilot.pause()
        assert column(table, 1)[0].startswith("lab-")


async def test_several_sweeps_are_chosen_in_a_dialog_and_none_is_a_hint(tmp_path: Path) -> None:
    app = make_app(tmp_path, start="runs", save_settings=False)
    async with app.run_test(size=(80, 24)) as pilot:
        seen: list[str] = []
        notify = app.notify
        app.notify = lambda message, **kw: (seen.append(str(message)), notify(message, **kw))[1]
        await pilot.press("w")
        await wait_until(pilot, lambda: seen)
        assert "No sweeps" in seen[0] and app.screen.sweep_name is None
    three_trials(tmp_path, "aa")
    three_trials(tmp_path, "bb")
    app = make_app(tmp_path, start="runs", save_settings=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("w")
        await wait_until(pilot, lambda: isinstance(app.screen, ChoiceDialog))
        await pilot.press("down", "enter")  # newest first: bb, then aa
        await wait_until(pilot, lambda: getattr(app.screen, "sweep_name", None) == "aa")
        table = app.screen.query_one(DataTable)
        await wait_until(pilot, lambda: table.row_count == 3 and status(app).startswith("aa-"))
        assert {str(table.get_row_at(r)[2]) for r in range(3)} == {"r=4", "r=8", "r=16"}

        # The sweep's folder goes while it is shown: the next read says so, no traceback.
        from conftest import recorded_notifications
        from stylelora_tui.runs.events import EventWriter

        seen = recorded_notifications(app)
        (tmp_path / "sweeps" / "aa" / "sweep.yaml").unlink()
        with EventWriter(tmp_path / "runs" / "aa-03-r16" / "events.jsonl") as writer:
            writer.write("eval", step=1, eval_loss=2.5)
        await wait_until(pilot, lambda: any("Cannot read sweep aa" in m for _, m, _ in seen))
        assert any("no sweep 'aa'" in m and severity == "error" for _, m, severity in seen)
        await wait_until(pilot, lambda: app.screen.sweep_name is None and str(table.ordered_columns[1].label) == "Run")
        await wait_until(pilot, lambda: table.row_count == 6)  # every run again
        assert sum("Cannot read sweep" in m for _, m, _ in seen) == 1


# --------------------------------------------------------------------------- Start sweep, from the Config form


async def open_dialog(app, pilot):
    from stylelora_tui.screens.sweep_dialog import SweepDialog

    await wait_until(pilot, lambda: app.screen.query("#f-lora-r"))
    await pilot.press("ctrl+y")
    await wait_until(pilot, lambda: isinstance(app.screen, SweepDialog))
    return app.screen


def problems_text(dialog) -> str:
    return str(dialog.query_one("#sweep-problems", Static).content)


async def test_a_bad_grid_or_name_stays_in_the_dialog_with_its_reason(workspace: Path, tiny_model: Path) -> None:
    from textual.widgets import Input, TextArea

    from conftest import write_tiny_config

    write_tiny_config(workspace, tiny_model, backend="peft", load_in_4bit=False)
    app = make_app(workspace, start="config", save_settings=False)
    async with app.run_test(size=(80, 24)) as pilot:
        dialog = await open_dialog(app, pilot)
        assert dialog.query_one(TextArea).text.startswith("lora.r: 8, 16")  # an example from the form's values
        assert dialog.query_one("#sweep-name", Input).value.startswith("tiny-")
        dialog.query_one(TextArea).text = "lora.r: 0, 8\ntrain.learning_rat: 1e-4\n"
        await pilot.press("ctrl+s")
        await pilot.pause()
        text = problems_text(dialog)
        assert "line 1: sweep.lora.r: value 0" in text and app.screen is dialog
        dialog.query_one(TextArea).text = "lora.method: lora, ia3\nlora.use_dora: true\n"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "lora.method=ia3" in problems_text(dialog) and "lora.use_dora" in problems_text(dialog)  # per point
        dialog.query_one(TextArea).text = "lora.r: 4, 8\n"
        dialog.query_one("#sweep-name", Input).value = "no/slash"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "sweep name" in problems_text(dialog) and app.screen is dialog
        # A grid that checks, but the config's corpus is gone: the reason names the form, not a passing file.
        dialog.query_one("#sweep-name", Input).value = "gone"
        (workspace / "corpus").rename(workspace / "corpus-moved")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: "Could not start" in problems_text(dialog), timeout=30)
        assert "the form's config: data.corpus" in problems_text(dialog) and "/tmp/stylelora-sweep" not in problems_text(dialog)
        await pilot.press("escape")
        await pilot.pause()
        assert not (workspace / "sweeps").exists()


@pytest.mark.slow
async def test_start_sweep_from_the_form_runs_the_grid_and_its_table_shows_in_runs(workspace: Path, tiny_model: Path) -> None:
    from textual.widgets import Input, TextArea

    from conftest import recorded_notifications, write_tiny_config
    from stylelora_tui.sweeps import sweep as sweeps

    write_tiny_config(workspace, tiny_model, backend="peft", load_in_4bit=False, max_steps=2, save_steps=2, sample_steps=-1)
    app = make_app(workspace, start="config", save_settings=False)
    seen = recorded_notifications(app)
    sweep = sweeps.Sweep(workspace / "sweeps" / "formsweep")
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            dialog = await open_dialog(app, pilot)
            dialog.query_one(TextArea).text = "# two ranks\nlora.r: 4, 8\n"
            dialog.query_one("#sweep-name", Input).value = "formsweep"
            await pilot.press("ctrl+s")
            await wait_until(pilot, lambda: app.screen is not dialog, timeout=60)
            assert any("Started sweep formsweep" in message for _, message, _ in seen), seen
            text = (sweep.path / "sweep.yaml").read_text(encoding="utf-8")
            assert "source: the app's Config form" in text and "lora.r: [4, 8]" in text
            assert sweep.read_status()["parallel"] == 1
            await wait_until(pilot, lambda: not sweep.runner_alive(), timeout=400)
            assert sweep.state() == "completed", sweep.log_path.read_text()
            await pilot.press("escape", "5", "w")
            table = app.screen.query_one(DataTable)
            await wait_until(pilot, lambda: app.screen.sweep_name == "formsweep" and table.row_count == 2)
            await wait_until(pilot, lambda: column(table, 0).count("*") == 1)
            assert sorted(column(table, 2)) == ["r=4", "r=8"] and set(column(table, 3)) == {"completed"}
            assert len(app.screen.query_one(LossChart).series) == 2
    finally:
        if sweep.runner_alive():
            sweeps.stop(sweep)
            sweeps.wait(sweep, 60)
