"""Pilot tests of the Config section: live estimate, inline validation, save and load."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import recorded_notifications

from stylelora_tui.screens.app import make_app

pytestmark = pytest.mark.anyio


async def settle(pilot) -> None:
    await pilot.pause(0.2)  # the form checks 0.12 s after the last keystroke
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def open_config(pilot):
    await pilot.press("2")
    await settle(pilot)
    return pilot.app.screen


async def type_into(pilot, widget_id: str, text: str) -> None:
    screen = pilot.app.screen
    field = screen.query_one(f"#{widget_id}")
    field.focus()
    field.value = ""
    await pilot.press(*text)
    await settle(pilot)


async def test_r_changes_the_estimate(tmp_path: Path) -> None:
    app = make_app(tmp_path / "ws")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_config(pilot)
        panel = screen.query_one("#estimate")
        before = panel.plain
        assert "Trainable" in before and "T4 16 GB" in before
        await type_into(pilot, "f-lora-r", "64")
        after = panel.plain
        assert after != before
        assert "24.31M" in before and "97.26M" in after  # Llama-3.2-3B, all projections
        assert app.config_dirty


async def test_invalid_value_shows_message_next_to_field(tmp_path: Path) -> None:
    app = make_app(tmp_path / "ws")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_config(pilot)
        await type_into(pilot, "f-lora-r", "0")
        problem = screen.query_one("#p-lora-r")
        assert problem.has_class("-shown") and "must be > 0" in str(problem.render())
        await type_into(pilot, "f-train-learning_rate", "fast")
        assert "must be a number" in str(screen.query_one("#p-train-learning_rate").render())
        await type_into(pilot, "f-lora-r", "8")
        assert not screen.query_one("#p-lora-r").has_class("-shown")
        # Saving is refused while a problem remains.
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert type(app.screen).__name__ == "ConfigScreen"
        assert not list((tmp_path / "ws" / "configs").glob("*.yaml"))


async def test_save_edit_by_hand_and_reload(tmp_path: Path) -> None:
    app = make_app(tmp_path / "ws")
    configs = tmp_path / "ws" / "configs"
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_config(pilot)
        await type_into(pilot, "f-lora-r", "32")
        await pilot.press("ctrl+s")
        await pilot.pause()
        dialog = app.screen
        dialog.query_one("#field-name").value = "mine"
        await pilot.press("enter")
        await settle(pilot)
        saved = configs / "mine.yaml"
        assert saved.exists() and "r: 32" in saved.read_text()
        assert not app.config_dirty

        # Edit by hand: a comment and an invalid value survive a load.
        text = saved.read_text().replace("r: 32", "r: 48   # my rank").replace("lora_dropout: 0.0", "lora_dropout: 1.5")
        saved.write_text("# my notes\n" + text)
        await pilot.press("ctrl+o")
        await pilot.pause()
        await pilot.press("enter")  # the first (only) file
        await settle(pilot)
        assert app.screen is screen
        assert screen.query_one("#f-lora-r").value == "48"
        assert "must be < 1" in str(screen.query_one("#p-lora-lora_dropout").render())
        await type_into(pilot, "f-lora-lora_dropout", "0.05")
        await pilot.press("ctrl+s")
        await pilot.pause()
        await pilot.press("enter")
        await settle(pilot)
        text = saved.read_text()
        assert text.startswith("# my notes") and "# my rank" in text and "lora_dropout: 0.05" in text


async def test_save_refuses_a_name_that_is_a_path(tmp_path: Path) -> None:
    app = make_app(tmp_path / "ws")
    configs = tmp_path / "ws" / "configs"
    async with app.run_test(size=(80, 24)) as pilot:
        await open_config(pilot)
        notes = recorded_notifications(app)
        for bad in ("..", "../escape", ".hidden"):
            await pilot.press("ctrl+s")
            await pilot.pause()
            app.screen.query_one("#field-name").value = bad
            await pilot.press("enter")
            await settle(pilot)
            assert any("config name" in message and severity == "error" for _, message, severity in notes), bad
            notes.clear()
        assert not list(configs.glob("*")) and not list(configs.parent.glob("*.yaml"))
        assert not (tmp_path / "escape.yaml").exists()


async def test_preset_diff_and_unsaved_guard(tmp_path: Path) -> None:
    app = make_app(tmp_path / "ws")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_config(pilot)
        await pilot.press("ctrl+r")
        await pilot.pause()
        await pilot.press("down", "down", "enter")  # cpu-demo
        await settle(pilot)
        assert screen.query_one("#f-model-name").value == "demo"
        assert app.config_dirty
        await pilot.press("ctrl+g")
        await pilot.pause()
        assert "model.name" in str(app.screen.query_one(".message").render())
        await pilot.press("escape")
        # Loading over unsaved changes asks first; "n" keeps them.
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert type(app.screen).__name__ == "ConfirmDialog"
        await pilot.press("n")
        await pilot.pause()
        assert app.screen is screen and screen.query_one("#f-model-name").value == "demo"
        # Switching sections keeps the form as it was.
        await pilot.press("escape", "1")
        await pilot.press("2")
        await pilot.pause()
        assert app.screen.query_one("#f-model-name").value == "demo"
        # Quitting asks too.
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert type(app.screen).__name__ == "ConfirmDialog"
        await pilot.press("n")
        await pilot.pause()
        assert app.is_running


async def test_form_is_walked_with_arrows_and_single_keys_switch_until_a_field_is_entered(tmp_path: Path) -> None:
    app = make_app(tmp_path / "ws")
    async with app.run_test(size=(80, 24)) as pilot:
        await open_config(pilot)
        assert app.focused is None  # single keys still switch sections
        seen = []
        for _ in range(5):
            await pilot.press("down")
            seen.append(app.focused.id)
        # Down walks the fields, a menu included (it opens on enter, not on the arrows).
        assert seen == ["f-model-name", "f-model-max_seq_length", "f-model-load_in_4bit", "f-model-backend", "f-lora-method"]
        await pilot.press("up")
        assert app.focused.id == "f-model-backend"
        await pilot.press("enter")
        await pilot.pause()
        assert type(app.focused).__name__ == "SelectOverlay"
        await pilot.press("escape", "escape")
        assert app.focused is None and not app.config_dirty
        await pilot.press("3")
        assert app.current_mode == "train"


@pytest.mark.parametrize("size", [(80, 24), (100, 30)], ids=lambda s: f"{s[0]}x{s[1]}")
async def test_every_field_label_is_whole(tmp_path: Path, size: tuple[int, int]) -> None:
    """Labels are the PEFT/TRL names: none cut ("per_device_train_b" at 100 columns was)."""
    from stylelora_tui import config as cfg

    app = make_app(tmp_path / "ws", start="config", save_settings=False)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        labels = list(app.screen.query(".field-label"))
        assert sorted(str(label.render()) for label in labels) == sorted(key for keys in cfg.SCHEMA.values() for key in keys)
        for label in labels:
            key = str(label.render())
            if not label.parent.display:
                continue  # another lora.method's field (hidden until that method is chosen)
            assert label.size.width > len(key), f"{key} gets {label.size.width} cells at {size}"
            # A text or menu field beside it keeps room for a value.
            field = label.parent.children[1]
            if type(field).__name__ in ("Input", "FieldSelect"):
                assert field.size.width >= 12, f"{key}'s field gets {field.size.width} cells at {size}"
