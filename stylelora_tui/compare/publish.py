"""Saving a comparison: compare.json in each run, compare.html, and ``stylelora-tui export`` after them.

``RUN/compare.json`` holds the base against that one run (the model card
quotes it); compare.html shows every side compared. An export request (from
the app's dialog) may then run ``stylelora-tui export RUN`` in a subprocess
for the model card, a merge, GGUF files for llama.cpp/Ollama or a push.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

from stylelora_tui.runs.run import Run

if TYPE_CHECKING:
    from stylelora_tui.compare.session import CompareSession

COMPARE_JSON = "compare.json"


def single_run(result: dict[str, Any], run_name: str) -> dict[str, Any]:
    """The part of a compare result about the base and one run."""
    variants = ["base", run_name]
    prompts = [{**p, "samples": {v: p["samples"].get(v, []) for v in variants}} for p in result["prompts"]]
    return {**result, "run": run_name, "variants": variants, "prompts": prompts}


def save_compare_json(result: dict[str, Any], runs: list[Run]) -> None:
    """Each run's compare.json: the base against that run."""
    for run in runs:
        text = json.dumps(single_run(result, run.name), indent=1, ensure_ascii=False)
        (run.path / COMPARE_JSON).write_text(text, encoding="utf-8")


def load_compare_json(run: Run) -> dict[str, Any] | None:
    """A run's saved compare result, or None when it has none (or it is unreadable)."""
    try:
        data = json.loads((run.path / COMPARE_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# --------------------------------------------------------------------------- opening a saved comparison


class Opened(NamedTuple):
    """What opening runs gives: the session to show, and (text, severity) lines for the user."""

    session: CompareSession
    notes: list[tuple[str, str]]


def _describe(settings: dict[str, Any]) -> str:
    penalty = settings.get("repetition_penalty", 1.0)
    return (f"T {settings['temperature']}, top-p {settings['top_p']}, max {settings['max_new_tokens']}, "
            f"n {settings['n']}, seed {settings['seed']}" + (f", repetition penalty {penalty}" if penalty != 1.0 else ""))


def _adapter_time(run: Run) -> float:
    """When the adapter a comparison of ``run`` uses was last written (0 when it has none)."""
    folder = run.adapter_dir if (run.adapter_dir / "adapter_config.json").exists() else run.latest_checkpoint()
    files = list(folder.glob("adapter_*")) if folder else []
    return max((f.stat().st_mtime for f in files), default=0.0)


def open_session(runs: list[Run], settings: dict[str, Any], chosen: bool = False) -> Opened:
    """The session for comparing ``runs``: their saved comparison when it fits, else a fresh one to generate.

    A fresh session has the first run's held-out prompts and ``settings``. The
    saved one is ``RUN/compare.json``, base against that one run, so several
    runs are always generated afresh. Set aside with a note: a file about other
    variants, one made with other settings than ``chosen`` ones (settings not
    chosen take the file's), one older than the run's adapter. A damaged file
    is set aside with a warning naming it.
    """
    from stylelora_tui.compare.session import CompareSession, held_out_records, settings_of

    try:
        records = held_out_records(runs[0]) if runs else []
        notes: list[tuple[str, str]] = []
    except Exception as exc:  # noqa: BLE001 - a broken config or corpus: typed prompts still work
        records, notes = [], [(f"No held-out prompts: {exc}", "warning")]
    fresh = Opened(CompareSession(runs, settings, records), notes)  # notes added below go with it
    saved = [run for run in runs if (run.path / COMPARE_JSON).exists()]
    if not saved:
        return fresh
    if len(runs) > 1:
        notes.append((f"{saved[0].path / COMPARE_JSON} holds the base against {saved[0].name} only: generating afresh",
                      "information"))
        return fresh
    run, path = runs[0], runs[0].path / COMPARE_JSON
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        session = CompareSession.from_result(runs, data, records)
        stale = _adapter_time(run) > path.stat().st_mtime
    except OSError as exc:
        notes.append((f"Could not read {path}: {exc.strerror or exc}; generating afresh", "warning"))
        return fresh
    except json.JSONDecodeError as exc:
        notes.append((f"{path} is damaged (not JSON: {exc}); generating afresh", "warning"))
        return fresh
    except ValueError as exc:  # SavedResultError, or text that is not UTF-8
        notes.append((f"{path} is damaged ({exc}); generating afresh", "warning"))
        return fresh
    used = settings_of(data)
    if session.variants != ["base", run.name]:
        why = f"compares {', '.join(session.variants)}, not base and {run.name}"
    elif chosen and used != {k: fresh.session.settings[k] for k in used}:
        why = f"was made with {_describe(used)}, not {_describe(fresh.session.settings)}"
    elif stale:
        why = f"is older than {run.name}'s adapter"
    else:
        return Opened(session, notes)
    notes.append((f"Saved comparison {path} set aside: it {why}; generating afresh", "information"))
    return fresh


def write_page(path: str | Path, result: dict[str, Any], run: Run) -> Path:
    """compare.html at ``path`` (a folder gets compare.html inside), with ``run``'s loss curve."""
    from stylelora_tui.compare import html as compare_html

    path = Path(path).expanduser()
    if path.is_dir():
        path = path / "compare.html"
    return compare_html.write(path, result, run.events())


# --------------------------------------------------------------------------- export requests


@dataclass(frozen=True)
class ExportRequest:
    path: str  # compare.html
    card: bool  # `stylelora-tui export RUN`: the model card
    merge: bool  # ... --merge
    push: str  # ... --push REPO ("" for none)
    gguf: bool = False  # ... --gguf: merged + base + LoRA GGUF files and Ollama Modelfiles
    quant: str = "f16"  # ... --quant QUANT (with gguf)

    def problem(self) -> str | None:
        """Why the request cannot be run as asked (None: it can)."""
        if not self.path:
            return "Give a path for compare.html"
        if self.merge and self.gguf:
            return "GGUF already holds a merged model: tick merge or GGUF, not both"
        return None


class ExportResult(NamedTuple):
    """What an export ends with: the page written (None when it could not be), what to show, and whether all went well."""

    html_path: str | None
    summary: str
    ok: bool


def export_compare(request: ExportRequest, run: Run, runs: list[Run], data: dict[str, Any],
                   progress: Callable[[str], None],
                   started: Callable[[subprocess.Popen], None] = lambda proc: None) -> ExportResult:
    """Write compare.html and each run's compare.json, then ``stylelora-tui export RUN`` when the request asks for it.

    ``progress`` gets each line the export prints; ``started`` gets the
    export process, so whoever holds it can stop it on the way out.
    """
    try:
        path = write_page(request.path, data, run)
        save_compare_json(data, runs)
    except OSError as exc:
        return ExportResult(None, f"Could not write compare.html: {exc}", False)
    if not (request.card or request.merge or request.gguf or request.push):
        return ExportResult(str(path), "", True)
    command = [sys.executable, "-m", "stylelora_tui.cli.main", "export", str(run.path)]
    command += ["--merge"] if request.merge else []
    command += ["--gguf", "--quant", request.quant] if request.gguf else []
    command += ["--push", request.push] if request.push else []
    lines: list[str] = []
    try:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, encoding="utf-8", errors="replace")
        started(proc)
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.append(line.rstrip())
            progress(line.strip())
        code = proc.wait()
    except OSError as exc:
        return ExportResult(str(path), f"stylelora-tui export did not start: {exc}", False)
    summary = "\n".join(lines[-20:])
    return ExportResult(str(path), f"$ stylelora-tui export {' '.join(command[4:])}\n{summary}", code == 0)


def stop_process(proc: subprocess.Popen | None) -> None:
    """End a running export on the way out (politely, then not): no orphan."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(3)
        except subprocess.TimeoutExpired:
            proc.kill()
