"""One handler for worker failures: a failing worker in any section shows a notification with the cause.

Each test makes one real worker of a section fail (broken input, or the core
function that worker calls raising) and checks the notification's text, that
no traceback reached the user, and that the app still answers keys.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import recorded_notifications

from stylelora_tui import config as cfg
from stylelora_tui.screens.app import make_app

pytestmark = pytest.mark.anyio


async def settle(pilot, app) -> None:
    from textual.worker import WorkerFailed

    for _ in range(3):
        await pilot.pause()
        try:
            await app.workers.wait_for_complete()
        except WorkerFailed:  # waiting on a failed worker re-raises its error: the app's handler is what is tested
            pass
    await pilot.pause()


async def still_answers(pilot, app) -> None:
    assert app.is_running and app.return_code is None
    await pilot.press("5")
    await pilot.pause()
    assert app.current_mode == "runs"


def failure(seen: list[tuple[str, str, str]], title: str) -> str:
    errors = [(t, m) for t, m, severity in seen if severity == "error"]
    assert [t for t, _ in errors] == [title], errors
    message = errors[0][1]
    assert "Traceback" not in message and 'File "' not in message
    return message


def ready_workspace(root: Path) -> Path:
    """A workspace with a corpus and a valid config, so Train can prepare a launch."""
    from conftest import write_corpus

    write_corpus(root / "corpus")
    config = cfg.defaults()
    cfg.save(root / "configs" / "lab.yaml", config)
    return root


async def test_corpus_worker_failure_on_a_damaged_corpus_folder(tmp_path: Path) -> None:
    corpus = tmp_path / "ws" / "corpus"
    corpus.mkdir(parents=True)
    (corpus / "report.json").write_text("{ not json", encoding="utf-8")
    app = make_app(tmp_path / "ws", save_settings=False)
    seen = recorded_notifications(app)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        message = failure(seen, "Corpus: the corpus pipeline failed")
        assert message.startswith("CorpusError: corpus folder") and "is damaged" in message and str(corpus) in message
        assert not app.screen.query_one("#progress-row").display
        await still_answers(pilot, app)


async def test_config_worker_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stylelora_tui.screens import config_form

    def broken(*args, **kwargs):
        raise RuntimeError("the estimator fell over")

    monkeypatch.setattr(config_form, "compute_estimate", broken)
    app = make_app(tmp_path / "ws", start="config", save_settings=False)
    seen = recorded_notifications(app)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        assert failure(seen, "Config: the memory estimate failed") == "RuntimeError: the estimator fell over"
        await still_answers(pilot, app)


async def test_train_worker_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stylelora_tui.training import plan

    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero in the step count")

    monkeypatch.setattr(plan, "launch_summary", broken)
    app = make_app(ready_workspace(tmp_path / "ws"), start="train", save_settings=False)
    seen = recorded_notifications(app)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        await pilot.press("n")
        await settle(pilot, app)
        assert failure(seen, "Train: preparing the launch failed") == "ZeroDivisionError: division by zero in the step count"
        assert type(app.screen).__name__ == "TrainScreen"  # no confirm dialog for a launch that could not be planned
        await still_answers(pilot, app)


def fake_run(workspace: Path) -> Path:
    """A finished run folder with a (fake) final adapter: enough for Runs and Compare to list it."""
    from stylelora_tui.runs.control import create_run
    from stylelora_tui.runs.workspace import Workspace

    run = create_run(Workspace(workspace), cfg.defaults(), name="done")
    (run.adapter_dir).mkdir(parents=True, exist_ok=True)
    (run.adapter_dir / "adapter_config.json").write_text(json.dumps({"r": 8}), encoding="utf-8")
    return run.path


async def test_runs_worker_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stylelora_tui.screens import train

    workspace = tmp_path / "ws"
    workspace.mkdir()
    run_path = fake_run(workspace)

    def unexpected(run):
        raise LookupError("no such run in the index")

    monkeypatch.setattr(train, "delete", unexpected)
    app = make_app(workspace, start="runs", save_settings=False)
    seen = recorded_notifications(app)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        await pilot.press("x")
        await pilot.pause()
        await pilot.press("y")
        await settle(pilot, app)
        assert failure(seen, "Runs: the run action failed") == "LookupError: no such run in the index"
        assert run_path.is_dir()
        await pilot.press("1")
        await pilot.pause()
        assert app.current_mode == "corpus" and app.is_running


async def test_compare_worker_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stylelora_tui.generation import client

    def broken(self):
        raise RuntimeError("the generation process spoke an unknown protocol")

    monkeypatch.setattr(client.GenerationClient, "start", broken)
    workspace = tmp_path / "ws"
    workspace.mkdir()
    fake_run(workspace)
    app = make_app(workspace, start="compare", save_settings=False)
    seen = recorded_notifications(app)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        title = next(t for t, _, severity in seen if severity == "error")
        assert title == "Compare: the generation process failed"
        assert failure(seen, title) == "RuntimeError: the generation process spoke an unknown protocol"
        await still_answers(pilot, app)


async def test_a_config_that_is_not_utf8_is_named_not_a_worker_failure(tmp_path: Path) -> None:
    workspace = ready_workspace(tmp_path / "ws")
    bad = workspace / "configs" / "zz-latin1.yaml"
    bad.write_bytes("model:\n  name: caf\xe9\n".encode("latin-1"))
    bad.touch()  # the newest config: the one a launch reads
    app = make_app(workspace, start="train", save_settings=False)
    seen = recorded_notifications(app)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        await pilot.press("n")
        await settle(pilot, app)
        assert not [t for t, _, severity in seen if severity == "error"]
        dialog = app.screen
        assert type(dialog).__name__ == "MessageDialog"
        text = str(dialog.query_one(".message").render())
        assert f"Cannot read the config {bad}" in text and "utf-8" in text


async def test_a_cancelled_import_is_not_reported_as_a_failure(tmp_path: Path) -> None:
    import threading

    from test_app_corpus import write_books

    from stylelora_tui.corpus.pipeline import PrepareOptions

    books = write_books(tmp_path / "books", files=2, paragraphs=4)
    app = make_app(tmp_path / "ws", save_settings=False)
    seen = recorded_notifications(app)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        cancel = threading.Event()
        cancel.set()  # cancelled before it starts: the pipeline stops at its first check
        app.screen.run_pipeline("import", [str(books)], PrepareOptions(), [], False, cancel)
        await settle(pilot, app)
        assert not [t for t, _, severity in seen if severity == "error"], seen
        assert ("", "Import cancelled; the corpus is unchanged") in [(t, m) for t, m, _ in seen]
        assert app.screen.corpus is None
