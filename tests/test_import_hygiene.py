"""The core never imports Textual; the app never imports torch and friends."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import stylelora_tui

HEAVY = ("torch", "transformers", "unsloth", "trl", "peft", "bitsandbytes", "datasets")


def _run(code: str, tmp_path: Path) -> dict:
    env = {
        "PATH": "/usr/bin:/bin",
        "STYLELORA_CONFIG_DIR": str(tmp_path / "config"),
        "STYLELORA_DATA_DIR": str(tmp_path / "data"),
        "STYLELORA_CACHE_DIR": str(tmp_path / "cache"),
        "HOME": str(tmp_path),
    }
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


UI_PACKAGES = ("stylelora_tui.screens", "stylelora_tui.themes")
# Entry points that run their process when imported.
PROCESS_MAINS = ("stylelora_tui.cli.__main__",)


def core_modules() -> list[str]:
    """Every module of every core subpackage (the UI packages excluded)."""
    names = []
    for info in pkgutil.walk_packages(stylelora_tui.__path__, prefix="stylelora_tui."):
        if info.name.startswith(UI_PACKAGES) or info.name in PROCESS_MAINS:
            continue
        names.append(info.name)
    return names


def test_core_modules_cover_every_subpackage() -> None:
    modules = set(core_modules())
    root = Path(stylelora_tui.__file__).parent
    on_disk = {
        ".".join(("stylelora_tui", *path.relative_to(root).with_suffix("").parts)).removesuffix(".__init__")
        for path in root.rglob("*.py")
    } - set(PROCESS_MAINS)
    assert on_disk <= modules | {"stylelora_tui"}, sorted(on_disk - modules)
    for package in ("cli", "corpus", "runs", "training", "generation", "compare"):
        assert any(name.startswith(f"stylelora_tui.{package}.") for name in modules), package


def test_core_never_imports_textual(tmp_path: Path) -> None:
    modules = core_modules()
    assert "stylelora_tui.config" in modules and "stylelora_tui.cli.app" in modules
    assert "stylelora_tui.runs.events" in modules and "stylelora_tui.training.trainer" in modules
    result = _run(
        f"""
        import importlib, json, sys
        for name in {modules!r}:
            importlib.import_module(name)
        print(json.dumps({{"textual": sorted(m for m in sys.modules if m == "textual" or m.startswith("textual."))}}))
        """,
        tmp_path,
    )
    assert result["textual"] == []


def test_app_never_imports_torch_and_friends(tmp_path: Path) -> None:
    books = tmp_path / "books"
    books.mkdir()
    (books / "a.txt").write_text(("The lamp burned low over the grey harbour. " * 40 + "\n\n") * 4)
    result = _run(
        f"""
        import asyncio, json, sys
        from stylelora_tui.screens.app import make_app

        async def main():
            app = make_app({str(tmp_path / "ws")!r})
            async with app.run_test(size=(80, 24)) as pilot:
                app.screen.query_one("#import-path").value = {str(books)!r}
                app.screen.query_one("#import-path").focus()
                await pilot.press("enter")
                await app.workers.wait_for_complete()
                await pilot.press("2")
                await pilot.pause(0.3)
                await app.workers.wait_for_complete()
                await pilot.press("3", "4", "5", "f1")
                await pilot.pause()
            return app

        asyncio.run(main())
        heavy = {HEAVY!r}
        print(json.dumps({{"heavy": sorted(m for m in sys.modules if m.split(".")[0] in heavy)}}))
        """,
        tmp_path,
    )
    assert result["heavy"] == []
    assert (tmp_path / "ws" / "corpus" / "train.jsonl").exists()
