"""The Adapters section at 80x24: the list with recipes, the mix dialog and its refusals, a real mix, cancel, compare.

The list and the refusals run on hand-written run folders (the checks read
only adapter_config.json, stylelora.json and config.yaml), in seconds. The
real mix trains two tiny runs once for the module (as test_mix.py does) and
mixes them through the dialog with the same ``stylelora-tui mix`` process the
CLI runs.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from pilot_helpers import wait_until
from conftest import cli_env, recorded_notifications, stylelora_command, write_corpus
from stylelora_tui.screens.adapters import AdaptersScreen
from stylelora_tui.screens.app import make_app
from stylelora_tui.screens.dialogs import MessageDialog
from stylelora_tui.screens.mix_dialog import MixDialog
from textual.widgets import DataTable, Input, Select, Static

from stylelora_tui import adapters as adapters_mod
from stylelora_tui import config as config_mod
from stylelora_tui import mix as mix_mod
from stylelora_tui.runs.control import create_run
from stylelora_tui.runs.run import Run
from stylelora_tui.runs.workspace import Workspace

pytestmark = pytest.mark.anyio
BASE = "unsloth/Llama-3.2-3B-Instruct-bnb-4bit"


def fake_adapter(workspace: Path, name: str, *, r: int, state: str = "completed", recipe: dict | None = None,
                 **adapter: Any) -> Run:
    """A finished run's files as the checks read them (no weights: nothing here loads a model)."""
    cfg = config_mod.defaults()
    cfg["model"]["name"] = BASE
    cfg["lora"].update(r=r, lora_alpha=2 * r)
    run = create_run(Workspace(workspace), cfg, name=name)
    run.adapter_dir.mkdir()
    targets = ["q_proj", "k_proj", "v_proj", "o_proj"]
    (run.adapter_dir / "adapter_config.json").write_text(json.dumps(
        {"peft_type": "LORA", "r": r, "lora_alpha": 2 * r, "target_modules": targets, **adapter}))
    (run.adapter_dir / "stylelora.json").write_text(json.dumps({"base_model": BASE}))
    if recipe is not None:
        (run.path / "mix.json").write_text(json.dumps(recipe))
    run.update_status(state=state, ended_at=time.time())
    return run


def table_names(app) -> list[str]:
    return [str(key.value) for key in app.screen.query_one(DataTable).rows]


async def open_adapters(app, pilot, count: int) -> DataTable:
    await wait_until(pilot, lambda: isinstance(app.screen, AdaptersScreen) and app.screen.loaded
                     and app.screen.query_one(DataTable).row_count == count)
    return app.screen.query_one(DataTable)


async def mark(app, pilot, *names: str) -> None:
    table = app.screen.query_one(DataTable)
    for name in names:
        table.move_cursor(row=table.get_row_index(name))
        await pilot.press("space")
    await pilot.pause()


def test_the_app_offers_every_method_of_the_core() -> None:
    assert set(adapters_mod.METHODS) == set(mix_mod.METHODS) and len(adapters_mod.METHODS) == len(mix_mod.METHODS)
    assert adapters_mod.METHODS[0] == "ties"


def test_the_mix_arguments_reach_the_cli_whole_even_negative_weights_and_dashes() -> None:
    from stylelora_tui.cli.main import build_parser

    args = adapters_mod.mix_arguments(Workspace(Path("/w")), ["-odd", "b"], method="dare_ties", weights=[-0.5, 1.5],
                                      density=0.7, name="-x")
    parsed = build_parser("mix").parse_args(args)
    assert (parsed.runs, parsed.method, parsed.weights, parsed.density, parsed.name, parsed.workspace) == (
        ["-odd", "b"], "dare_ties", [-0.5, 1.5], 0.7, "-x", Path("/w"))
    assert adapters_mod.default_mix_name(["20250101-a-long-run-name", "b"], "ties", {"a-long-run-name+b-ties"}) == (
        "a-long-run-name+b-ties-2")


async def test_the_list_shows_each_adapter_and_each_mix_with_its_recipe(tmp_path: Path) -> None:
    fake_adapter(tmp_path, "a", r=8)
    fake_adapter(tmp_path, "dora", r=8, use_dora=True)
    fake_adapter(tmp_path, "prompt", r=8, peft_type="PROMPT_TUNING")
    broken = fake_adapter(tmp_path, "broken", r=8)
    (broken.adapter_dir / "adapter_config.json").write_text("{not json")
    fake_adapter(tmp_path, "stopped", r=8, state="stopped")  # not finished: not an adapter to use
    create_run(Workspace(tmp_path), config_mod.defaults(), name="created-only")
    recipe = {"method": "ties", "weights": [0.6, 0.4], "density": 0.5, "r": 8,
              "sources": [{"name": "a", "weight": 0.6, "r": 8}, {"name": "b", "weight": 0.4, "r": 8}]}
    fake_adapter(tmp_path, "ab-ties", r=8, recipe=recipe)

    app = make_app(tmp_path, start="adapters", save_settings=False)
    async with app.run_test(size=(80, 24)) as pilot:
        table = await open_adapters(app, pilot, 5)
        assert table_names(app) == ["a", "ab-ties", "broken", "dora", "prompt"]
        assert table.get_row("a")[2:5] == ["trained", "LoRA r8", "instruction"]
        assert table.get_row("ab-ties")[2:4] == ["mix: ties", "LoRA r8"]
        assert table.get_row("dora")[3] == "DoRA r8" and table.get_row("prompt")[3] == "PROMPT_TUNING"
        table.move_cursor(row=1)
        await pilot.pause()
        details = str(app.screen.query_one("#adapters-details", Static).content)
        assert "ab-ties: ties 0.6 a + 0.4 b, density 0.5" in details and "sources: a (r8) x 0.6, b (r8) x 0.4" in details
        assert f"base: {BASE}" in details and "mix with another LoRA (m)" in details
        # A file that cannot be read: listed, with what is wrong and where, not a traceback.
        table.move_cursor(row=2)
        await pilot.pause()
        assert table.get_row("broken")[3] == "?"
        assert str(app.screen.query_one("#adapters-details", Static).content).startswith(
            f"broken: cannot read {broken.adapter_dir / 'adapter_config.json'}: ")
        table.move_cursor(row=3)
        await pilot.pause()
        assert "not mixable: a DoRA adapter" in str(app.screen.query_one("#adapters-details", Static).content)
        # Prompt tuning: nothing to merge, nothing to mix; e says why and starts nothing.
        seen = recorded_notifications(app)
        table.move_cursor(row=table.get_row_index("prompt"))
        await pilot.press("e")
        await pilot.pause()
        details = str(app.screen.query_one("#adapters-details", Static).content)
        assert "no merge (adds tokens)" in details and "not mixable: a PROMPT_TUNING adapter" in details
        assert "it adds learned tokens" in seen[-1][1] and app.screen.job is None
        # Fewer than two marked: m says what to do, no dialog.
        await pilot.press("space", "m")
        await pilot.pause()
        assert not isinstance(app.screen, MixDialog) and "Mark two or more adapters" in seen[-1][1]
        # The palette lists the section's commands beside the app's.
        from stylelora_tui.screens.commands import CommandsProvider

        listed = [str(hit.text) async for hit in CommandsProvider(app.screen).search("adapters")]
        assert {"Adapters: Mark", "Adapters: Mix", "Adapters: Compare", "Adapters: Merge", "Adapters: Cancel",
                "Everywhere: Adapters"} <= set(listed)
        # A new finished run is listed without a key press (the run watcher sees it).
        fake_adapter(tmp_path, "late", r=8)
        await wait_until(pilot, lambda: "late" in table_names(app))


async def test_the_dialog_shows_a_refusal_naming_both_adapters_and_never_launches(tmp_path: Path) -> None:
    fake_adapter(tmp_path, "a", r=8)
    fake_adapter(tmp_path, "wide", r=16)
    app = make_app(tmp_path, start="adapters", save_settings=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_adapters(app, pilot, 2)
        await mark(app, pilot, "a", "wide")
        await pilot.press("m")
        await wait_until(pilot, lambda: isinstance(app.screen, MixDialog))
        dialog = app.screen
        assert dialog.query_one("#mix-weights", Input).value == "0.5,0.5"
        assert dialog.query_one("#mix-name", Input).value == "a+wide-ties"
        assert dialog.query_one("#mix-method", Select).value == "ties" and dialog.query_one("#mix-density-row").display
        # The core's check runs as the dialog opens: ties needs the same rank.
        await wait_until(pilot, lambda: dialog.problem != "")
        assert "runs a and wide have different ranks (a: r=8; wide: r=16): ties needs the same r" in dialog.problem
        assert "different ranks" in str(dialog.query_one("#mix-problem", Static).content)
        await pilot.press("ctrl+s")  # Mix: checked again, refused again, the dialog stays
        await pilot.pause(0.5)
        await wait_until(pilot, lambda: not dialog.checking)
        assert app.screen is dialog and "different ranks" in dialog.problem and app.screen_stack[0].job is None
        # cat mixes any ranks, takes no density (its field is hidden) and passes the checks.
        dialog.query_one("#mix-method", Select).value = "cat"
        await pilot.pause()
        assert not dialog.query_one("#mix-density-row").display
        assert dialog.query_one("#mix-name", Input).value == "a+wide-cat"  # the name follows the method until edited
        await wait_until(pilot, lambda: not dialog.checking)
        assert dialog.problem == "" and "can be mixed" in str(dialog.query_one("#mix-problem", Static).content)
        # A bad field is named.
        dialog.query_one("#mix-weights", Input).value = "1,x"
        dialog.query_one("#mix-method", Select).value = "linear"
        await pilot.pause()
        assert "weights '1,x': give numbers separated by commas" in dialog.problem
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, AdaptersScreen) and not (tmp_path / "runs" / "a+wide-ties").exists()


@pytest.mark.parametrize("other, message", [
    ({"use_dora": True}, "run other is a DoRA adapter (use_dora: true)"),
    ({"use_rslora": True}, "run other is a rsLoRA adapter (use_rslora: true)"),
    ({"base": "someone/another-model"}, "runs a and other have different base models (a: " + BASE),
])
async def test_each_kind_of_refusal_reaches_the_dialog(tmp_path: Path, other: dict, message: str) -> None:
    fake_adapter(tmp_path, "a", r=8)
    run = fake_adapter(tmp_path, "other", r=8, **{k: v for k, v in other.items() if k != "base"})
    if "base" in other:
        (run.adapter_dir / "stylelora.json").write_text(json.dumps({"base_model": other["base"]}))
    app = make_app(tmp_path, start="adapters", save_settings=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_adapters(app, pilot, 2)
        await mark(app, pilot, "a", "other")
        await pilot.press("m")
        await wait_until(pilot, lambda: isinstance(app.screen, MixDialog) and app.screen.problem != "")
        assert message in app.screen.problem


# --------------------------------------------------------------------------- a real mix


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model) -> Workspace:
    """Runs a and b (r=8, seeds 1 and 2), trained side by side as in test_mix.py."""
    from test_mix import _config

    root = tmp_path_factory.mktemp("adapters-ws")
    write_corpus(root / "corpus")
    (root / "configs").mkdir()
    jobs = {name: subprocess.Popen(stylelora_command("train", "-w", str(root), "--name", name,
                                                     str(_config(root, tiny_model, name, r=8, seed=seed))),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(),
                                   stdin=subprocess.DEVNULL)
            for name, seed in (("a", 1), ("b", 2))}
    for job in jobs.values():
        _, err = job.communicate(timeout=300)
        assert job.returncode == 0, err
    return Workspace(root)


@pytest.mark.slow
async def test_a_mix_through_the_dialog_is_listed_with_its_recipe_and_opens_in_compare(trained: Workspace) -> None:
    app = make_app(trained.root, start="adapters", save_settings=False)
    async with app.run_test(size=(80, 24)) as pilot:
        seen = recorded_notifications(app)
        await open_adapters(app, pilot, 2)
        await mark(app, pilot, "a", "b")
        await pilot.press("m")
        await wait_until(pilot, lambda: isinstance(app.screen, MixDialog))
        dialog = app.screen
        await wait_until(pilot, lambda: not dialog.checking)
        assert dialog.problem == ""
        dialog.query_one("#mix-weights", Input).value = "0.6,0.4"
        dialog.query_one("#mix-density", Input).value = "0.7"
        dialog.query_one("#mix-name", Input).value = "ab"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, AdaptersScreen))
        screen = app.screen
        status = screen.query_one("#adapters-status", Static)
        await wait_until(pilot, lambda: "mixing ab:" in str(status.content))
        await wait_until(pilot, lambda: screen.job is None and "ab" in table_names(app), timeout=240)
        recipe = json.loads((trained.runs_dir / "ab" / "mix.json").read_text())
        assert recipe["method"] == "ties" and recipe["weights"] == [0.6, 0.4] and recipe["density"] == 0.7
        assert [s["name"] for s in recipe["sources"]] == ["a", "b"]
        assert ("Adapters", "mixing ab: done", "information") in seen
        assert screen.highlighted() == "ab" and screen.query_one(DataTable).get_row("ab")[2] == "mix: ties"
        assert "ab: ties 0.6 a + 0.4 b, density 0.7" in str(screen.query_one("#adapters-details", Static).content)
        # e: merged into the base by `stylelora-tui export --merge`, its output on the status line.
        await pilot.press("e")
        await wait_until(pilot, lambda: screen.job is not None)
        await wait_until(pilot, lambda: screen.job is None, timeout=240)
        assert ("Adapters", "merging ab: done", "information") in seen
        assert (trained.runs_dir / "ab" / "merged" / "model.safetensors").exists()
        # c: the highlighted (new) adapter in Compare, against the base (the sources' marks went with the mix).
        await pilot.press("c")
        await wait_until(pilot, lambda: app.current_mode == "compare" and app.screen.is_mounted)
        assert [run.name for run in app.screen.session.runs] == ["ab"]
        # Back in Adapters, the marked ones go to Compare together.
        await pilot.press("6")
        await wait_until(pilot, lambda: isinstance(app.screen, AdaptersScreen))
        await mark(app, pilot, "b", "ab")
        await pilot.press("c")
        await wait_until(pilot, lambda: app.current_mode == "compare"
                         and [run.name for run in app.screen.session.runs] == ["b", "ab"])


@pytest.mark.slow
async def test_a_mix_cancelled_with_ctrl_x_leaves_nothing(trained: Workspace) -> None:
    app = make_app(trained.root, start="adapters", save_settings=False)
    async with app.run_test(size=(80, 24)) as pilot:
        seen = recorded_notifications(app)
        await open_adapters(app, pilot, len(trained.runs()))
        await mark(app, pilot, "a", "b")
        await pilot.press("m")
        await wait_until(pilot, lambda: isinstance(app.screen, MixDialog))
        dialog = app.screen
        dialog.query_one("#mix-name", Input).value = "never"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, AdaptersScreen))
        screen = app.screen
        status = screen.query_one("#adapters-status", Static)
        await wait_until(pilot, lambda: "loading" in str(status.content), timeout=60)
        await pilot.press("ctrl+x")
        await wait_until(pilot, lambda: screen.job is None, timeout=60)
        assert ("Adapters", "mixing never: cancelled", "warning") in seen
        assert not (trained.runs_dir / "never").exists() and not list(trained.root.glob(".mix-*"))
        assert not isinstance(app.screen, MessageDialog)
