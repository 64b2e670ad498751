"""Layout snapshots (pytest-textual-snapshot): 80x24 and 120x40 (Config: also 100x30), a dark and a light theme.

Update after an intended change with ``pytest tests/test_app_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from stylelora_tui.screens.app import make_app

# A fixed folder, so no random temporary path shows up in a snapshot.
WORKSPACE = Path("/tmp/stylelora-tui-snapshot-ws")
SIZES = [(80, 24), (120, 40)]
CONFIG_SIZES = [(80, 24), (100, 30), (120, 40)]  # 100 columns cut the labels once ("per_device_train_b2")
THEMES = ["stylelora-dark", "stylelora-light"]


def _books(folder: Path) -> Path:
    from test_app_corpus import write_books

    return write_books(folder, files=2, paragraphs=4)


@pytest.fixture
def workspace() -> Path:
    shutil.rmtree(WORKSPACE, ignore_errors=True)
    WORKSPACE.mkdir(parents=True)
    yield WORKSPACE
    shutil.rmtree(WORKSPACE, ignore_errors=True)


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_corpus_snapshot(snap_compare, workspace: Path, theme: str, size: tuple[int, int]) -> None:
    books = _books(workspace / "books")

    async def run_before(pilot) -> None:
        field = pilot.app.screen.query_one("#import-path")
        field.value = str(books)
        field.focus()
        await pilot.press("enter")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("down")
        await pilot.pause()

    app = make_app(workspace / "ws", theme=theme, save_settings=False)
    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("size", CONFIG_SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_config_snapshot(snap_compare, workspace: Path, theme: str, size: tuple[int, int]) -> None:
    async def run_before(pilot) -> None:
        await pilot.pause(0.3)
        await pilot.app.workers.wait_for_complete()
        field = pilot.app.screen.query_one("#f-lora-r")
        field.cursor_blink = False  # a blinking cursor would make the snapshot flaky
        field.focus()
        field.value = "0"
        await pilot.pause(0.3)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    app = make_app(workspace / "ws", start="config", theme=theme, save_settings=False)
    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("theme", THEMES)
def test_help_snapshot(snap_compare, workspace: Path, theme: str) -> None:
    app = make_app(workspace / "ws", start="train", theme=theme, save_settings=False)
    assert snap_compare(app, terminal_size=(80, 24), press=["f1"])


@pytest.mark.parametrize("theme", THEMES)
def test_adapters_snapshot(snap_compare, workspace: Path, theme: str) -> None:
    """The Adapters section with the mix dialog open on a refusal (ties across ranks), at 80x24."""
    from test_app_adapters import fake_adapter

    fake_adapter(workspace / "ws", "a", r=8)
    fake_adapter(workspace / "ws", "wide", r=16)
    recipe = {"method": "ties", "weights": [0.6, 0.4], "density": 0.5,
              "sources": [{"name": "a", "weight": 0.6, "r": 8}, {"name": "b", "weight": 0.4, "r": 8}]}
    fake_adapter(workspace / "ws", "ab-ties", r=8, recipe=recipe)

    async def run_before(pilot) -> None:
        screen = pilot.app.screen
        while not (screen.loaded and screen.query_one("DataTable").row_count == 3):
            await pilot.pause(0.05)
        await pilot.press("space", "down", "down", "space", "m")
        while not getattr(pilot.app.screen, "problem", ""):
            await pilot.pause(0.05)
        await pilot.pause()

    app = make_app(workspace / "ws", start="adapters", theme=theme, save_settings=False)
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)
