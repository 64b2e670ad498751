"""How responsive the Corpus section stays while it imports a large corpus.

Writes ``--books`` synthetic books (seeded, ~480k words each, in the words of
the demo corpus), opens the app headless at 80x24 on a fresh workspace,
starts an import of them and, every 0.25 s until it ends, presses ``v`` and
times how long until the side view changes. The baseline is the same key,
timed the same way, with the app idle beforehand, in the same process.
Prints both medians, the worst, and the ratio.

    python bench/import_responsiveness.py [--books 8]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from importlib import resources
from pathlib import Path


def write_books(folder: Path, books: int) -> int:
    """Books of 200 chapters x 20 paragraphs; returns the number of words written."""
    demo = resources.files("stylelora_tui") / "data" / "demo_corpus"
    vocab = [w for f in demo.iterdir() if f.name.endswith((".txt", ".md")) for w in f.read_text(encoding="utf-8").split() if w.isalpha()]
    folder.mkdir(parents=True)
    total = 0
    for b in range(books):
        rng = random.Random(100 + b)
        chapters = []
        for c in range(200):
            paragraphs = [f"CHAPTER {c + 1}"]
            for _ in range(20):
                words = [rng.choice(vocab) + ("." if rng.random() < 0.07 else "") for _ in range(rng.randint(60, 180))]
                total += len(words)
                paragraphs.append(" ".join(words) + ".")
            chapters.append("\n\n".join(paragraphs))
        (folder / f"book{b}.txt").write_text("\n\n".join(chapters), encoding="utf-8")
    return total


async def key_latency(pilot, screen) -> float:
    """Seconds from pressing v until the side view has changed."""
    switcher = screen.query_one("#side")
    before = switcher.current
    start = time.perf_counter()
    await pilot.press("v")
    while switcher.current == before:
        await asyncio.sleep(0.002)
    return time.perf_counter() - start


async def measure(workspace: Path, books: Path) -> tuple[list[float], list[float], float, int]:
    from stylelora_tui.screens.app import make_app

    app = make_app(workspace, save_settings=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = app.screen
        idle = []
        for _ in range(12):
            await asyncio.sleep(0.05)
            idle.append(await key_latency(pilot, screen))
        field = screen.query_one("#import-path")
        field.value = str(books)
        field.focus()
        start = time.perf_counter()
        await pilot.press("enter")
        screen.query_one("#passages").focus()
        busy = []
        while any(w.group == "corpus" and not w.is_finished for w in app.workers):
            await asyncio.sleep(0.25)
            busy.append(await key_latency(pilot, screen))
        seconds = time.perf_counter() - start
        await pilot.pause()
        passages = len(screen.corpus.passages) if screen.corpus else 0
    return idle, busy, seconds, passages


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--books", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        words = write_books(Path(tmp) / "books", args.books)
        idle, busy, seconds, passages = asyncio.run(measure(Path(tmp) / "ws", Path(tmp) / "books"))
    idle_ms, busy_ms = statistics.median(idle) * 1000, statistics.median(busy) * 1000
    print(f"import: {args.books} books, {words:,} words -> {passages:,} passages in {seconds:.1f} s")
    print(f"key to screen, idle: median {idle_ms:.0f} ms, worst {max(idle) * 1000:.0f} ms ({len(idle)} presses)")
    print(f"key to screen, importing: median {busy_ms:.0f} ms, worst {max(busy) * 1000:.0f} ms ({len(busy)} presses)")
    print(f"ratio importing / idle (medians): {busy_ms / idle_ms:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
