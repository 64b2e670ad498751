"""run_isolated: a core function in a child process, with its result, progress, cancel and errors."""

from __future__ import annotations

import threading
from pathlib import Path

import psutil
import pytest

from stylelora_tui.corpus import pipeline as core
from stylelora_tui.isolated import IsolatedProcessDied, run_isolated

ERRORS = (core.PrepareCancelled, core.CorpusError)


def _book(folder: Path) -> Path:
    folder.mkdir()
    text = "\n\n".join(" ".join(f"word{i}x{j}" for j in range(150)) + "." for i in range(6))
    (folder / "book.txt").write_text(text, encoding="utf-8")
    return folder


def test_result_and_progress_come_back_from_the_child(tmp_path: Path) -> None:
    seen: list[tuple[str, float | None]] = []
    report = run_isolated(core.prepare, [str(_book(tmp_path / "books"))], tmp_path / "out", core.PrepareOptions(),
                          progress=lambda text, fraction=None: seen.append((text, fraction)), errors=ERRORS)
    assert isinstance(report, core.PrepareReport) and report.output_written
    assert sum(p.words for p in core.load_corpus(tmp_path / "out").passages) == 900
    assert seen[-1] == ("done", 1.0) and any(text.startswith("reading") for text, _ in seen)


def test_cancel_reaches_the_child_and_nothing_is_written(tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(core.PrepareCancelled):
        run_isolated(core.prepare, [str(_book(tmp_path / "books"))], tmp_path / "out", core.PrepareOptions(),
                     cancel=cancel, errors=ERRORS)
    assert not (tmp_path / "out").exists()


def test_errors_keep_their_type_or_are_named(tmp_path: Path) -> None:
    with pytest.raises(core.CorpusError, match="not a prepared corpus folder"):
        run_isolated(core.rechunk, tmp_path / "nothing-here", errors=ERRORS)
    with pytest.raises(RuntimeError, match="CorpusError: .*not a prepared corpus folder"):
        run_isolated(core.rechunk, tmp_path / "nothing-here")


def _many_books(folder: Path, count: int = 40) -> Path:
    folder.mkdir()
    for f in range(count):
        (folder / f"book{f}.txt").write_text("\n\n".join(" ".join(f"w{f}x{i}y{j}" for j in range(200)) + "." for i in range(10)))
    return folder


def test_a_killed_child_is_reported(tmp_path: Path) -> None:
    def kill_children(text: str, fraction: float | None = None) -> None:
        for child in psutil.Process().children():
            try:
                if "stylelora_tui.isolated" in child.cmdline():
                    child.kill()
                    child.wait(10)  # dead before it could finish the 40 books and send a result
            except psutil.Error:  # a zombie of another test, or already gone
                pass

    with pytest.raises(IsolatedProcessDied, match="ended without a result"):
        run_isolated(core.prepare, [str(_many_books(tmp_path / "books"))], tmp_path / "out", core.PrepareOptions(),
                     progress=kill_children, errors=ERRORS)


def test_cancel_while_running_stops_the_child_cleanly(tmp_path: Path) -> None:
    books = _many_books(tmp_path / "books")
    cancel = threading.Event()
    with pytest.raises(core.PrepareCancelled):
        run_isolated(core.prepare, [str(books)], tmp_path / "out", core.PrepareOptions(),
                     progress=lambda text, fraction=None: cancel.set(), cancel=cancel, errors=ERRORS)
    assert not (tmp_path / "out").exists()
