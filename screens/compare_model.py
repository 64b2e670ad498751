"""What the Compare section holds and computes, apart from its widgets.

The prompts compared, their samples, the sampling settings, the score rows,
the compare.json result and the export all live here as plain data and plain
functions, so the screen is left with widgets, workers and messages, and all
of this can be read (and tested) without Textual. Callbacks stand in for the
messages a worker posts; heavy or slow imports stay inside the functions that
need them, as the app's start-up time counts.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from stylelora_tui.runs.run import Run
from stylelora_tui.runs.workspace import Workspace

if TYPE_CHECKING:
    from stylelora_tui.generation.client import GenerationClient
    from stylelora_tui.screens.compare_dialogs import ExportRequest

FLUSH_S = 0.2  # the reader thread posts what it has at most this often (plus at every finished sample)
DEFAULT_SETTINGS: dict[str, Any] = {"temperature": 0.7, "top_p": 0.9, "max_new_tokens": 200, "n": 5, "seed": 0}
SETTING_FIELDS = (
    ("temperature", "Temperature (0 is greedy)", float),
    ("top_p", "Top-p (0 < p <= 1)", float),
    ("max_new_tokens", "Max new tokens", int),
    ("n", "Samples per side (n, 1-100)", int),
    ("seed", "Seed of sample 1 (sample i uses seed + i - 1)", int),
)


@dataclass
class Sample:
    seed: int
    text: str = ""
    done: bool = False
    tokens: int | None = None
    stopped: str | None = None

    @property
    def state(self) -> str:
        """How far this sample is, for its pane's subtitle."""
        return f"{self.tokens} tok · {self.stopped}" if self.done else "generating..." if self.text else "waiting"


@dataclass
class Item:
    """One prompt compared: its record, the settings used and every side's samples."""

    record: dict[str, Any]
    label: str
    settings: dict[str, Any]
    samples: dict[str, list[Sample]]
    finished: bool = False
    error: str = ""

    @classmethod
    def fresh(cls, record: dict[str, Any], label: str, settings: dict[str, Any], variants: list[str]) -> Item:
        """A prompt about to be generated: ``n`` empty samples per side, seeds counted from ``seed``."""
        samples = {v: [Sample(seed=settings["seed"] + i) for i in range(settings["n"])] for v in variants}
        return cls(dict(record), label, dict(settings), samples)

    @property
    def key(self) -> str:
        return str(self.record.get("id") or self.record.get("input"))

    def take(self, event: dict[str, Any]) -> int | None:
        """Apply one protocol line of a side of this item; the sample's index when it streamed a token."""
        samples = self.samples[event["variant"]]
        i = int(event.get("sample", 0))
        if not 0 <= i < len(samples):
            return None
        sample = samples[i]
        sample.seed = int(event.get("seed", sample.seed))
        if event.get("done"):
            sample.text, sample.done = str(event.get("text", "")), True
            sample.tokens, sample.stopped = event.get("tokens"), event.get("stopped")
        elif "token" in event:
            sample.text += str(event["token"])
            return i
        return None


@dataclass
class Job:
    number: int
    op: str
    fields: dict[str, Any]
    rid: str | None = None
    cancelled: bool = False
    item: Item | None = None


class ExportResult(NamedTuple):
    """What an export ends with: the page written (None when it could not be), what to show, and whether all went well."""

    html_path: str | None
    summary: str
    ok: bool


def has_final_adapter(run: Run) -> bool:
    return (run.adapter_dir / "adapter_config.json").exists()


def candidate_runs(workspace: Workspace) -> list[Run]:
    """Runs that can be compared: a final adapter, or at least one checkpoint."""
    return [run for run in workspace.runs() if has_final_adapter(run) or run.latest_checkpoint()]


def default_runs(workspace: Workspace) -> list[Run]:
    """What the screen compares when told nothing: the newest finished run, else the newest with a checkpoint."""
    candidates = candidate_runs(workspace)
    finished = [r for r in candidates if has_final_adapter(r)]
    return (finished or candidates)[-1:]


def run_choices(workspace: Workspace, picked: list[Run]) -> list[tuple[str, str, bool]]:
    """The run picker's rows (label, folder, ticked), the runs compared now ticked."""
    current = {str(run.path) for run in picked}
    choices = []
    for run in candidate_runs(workspace):
        checkpoint = "" if has_final_adapter(run) else f", {run.latest_checkpoint().name}"  # type: ignore[union-attr]
        choices.append((f"{run.name} ({run.state}{checkpoint})", str(run.path), str(run.path) in current))
    return choices


def held_out_records(run: Run) -> list[dict[str, Any]]:
    """The run's held-out prompts (its corpus's eval.jsonl); raises on a broken config or corpus."""
    from stylelora_tui.prompting import read_jsonl

    path = Path(run.config()["data"]["corpus"]) / "eval.jsonl"
    return [r for r in read_jsonl(path) if isinstance(r, dict) and r.get("input")] if path.exists() else []


def parse_settings(values: dict[str, str], current: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """The settings typed in the form, checked as the generation process checks them."""
    new = dict(current)
    for name, label, kind in SETTING_FIELDS:
        try:
            new[name] = kind(values.get(name, current[name]).strip())
        except (TypeError, ValueError):
            return None, f"{label}: not a {'whole ' if kind is int else ''}number"
    if not 1 <= new["n"] <= 100 or new["max_new_tokens"] < 1 or new["temperature"] < 0 or not 0 < new["top_p"] <= 1:
        return None, "need 1 <= n <= 100, max new tokens >= 1, temperature >= 0 and 0 < top-p <= 1"
    return new, ""


def generate_fields(record: dict[str, Any], settings: dict[str, Any], variants: list[str]) -> dict[str, Any]:
    """A ``generate`` request: a typed prompt goes as text, a held-out record whole (its instruction included)."""
    typed = not record.get("instruction")
    fields = {"prompt": record["input"]} if typed else {"record": record}
    return {**fields, "variants": variants, "n": settings["n"], "seed": settings["seed"], "temperature": settings["temperature"],
            "top_p": settings["top_p"], "max_new_tokens": settings["max_new_tokens"]}


def serve_jobs(client: GenerationClient, jobs: queue.Queue[Job | None], send: Callable[[int, list[dict[str, Any]]], None]) -> None:
    """Send the queued jobs to the generation process one at a time until ``None``; hand back their lines in batches.

    Tokens are held for up to ``FLUSH_S`` so the screen redraws a few times a
    second, never once per token; any other line goes at once.
    """
    while (job := jobs.get()) is not None:
        if job.cancelled:
            send(job.number, [{"finished": True, "cancelled": True}])
            continue
        job.rid = client.request(job.op, **job.fields)
        if job.cancelled:
            client.cancel(job.rid)
        batch: list[dict[str, Any]] = []
        last = time.monotonic()
        for event in client.events(job.rid, timeout=None):
            batch.append(event)
            now = time.monotonic()
            if not ("token" in event and now - last < FLUSH_S):
                send(job.number, batch)
                batch, last = [], now


def status_line(activity: str, settings: dict[str, Any], ready: dict[str, Any] | None) -> str:
    """The status line: what is going on, the sampling settings, and the model once loaded."""
    s = settings
    model = f" · {Path(str(ready.get('model'))).name} on {ready.get('device')}" if ready else ""
    return (f"{activity} · T {s['temperature']} · top-p {s['top_p']} · max {s['max_new_tokens']} · "
            f"n {s['n']} · seed {s['seed']}{model}")


def style_inputs(items: list[Item], records: list[dict[str, Any]],
                 variants: list[str]) -> tuple[list[str], list[str], dict[str, list[str]]] | None:
    """The author's held-out passages, the base's and each run's finished samples; None before any prompt finished."""
    done = [item for item in items if item.finished]
    if not done:
        return None
    texts = {v: [s.text for item in done for s in item.samples.get(v, []) if s.done] for v in variants}
    author = [str(r.get("output", "")) for r in records if r.get("output")]
    return author, texts["base"], {v: texts[v] for v in variants if v != "base"}


def fixed(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def score_rows(style: dict[str, Any] | None, variants: list[str],
               losses: dict[str, dict[str, Any]]) -> list[tuple[str, str, str, str, str, str]]:
    """The score table: side, Delta, words per sentence, MATTR, held-out loss and perplexity (the author row first)."""
    style = style or {}
    author = style.get("author", {})
    rows = [("author", "0", fixed(author.get("mean_sentence_length"), 1), fixed(author.get("mattr")), "", "")] if style else []
    for name in variants:
        scores = style.get("variants", {}).get(name, {})
        loss = losses.get(name, {})
        rows.append((name, fixed(scores.get("delta")), fixed(scores.get("mean_sentence_length"), 1), fixed(scores.get("mattr")),
                     fixed(loss.get("eval_loss")), fixed(loss.get("perplexity"), 2)))
    return rows


def compare_result(run: Run, items: list[Item], variants: list[str], *, shown: list[str], current: Item | None,
                   settings: dict[str, Any], ready: dict[str, Any] | None, style: dict[str, Any] | None,
                   losses: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What ``compare_cli`` saves as compare.json, for the prompts with a finished sample of ``variants``.

    ``shown``: every side on screen; the style report keeps only ``variants``'
    scores when fewer are asked for. The settings are the newest prompt's (the
    form may have changed since), ``settings`` when no prompt has a sample.
    """
    items = [item for item in items if any(s.done for v in variants for s in item.samples.get(v, []))]
    used = (current or items[-1]).settings if items else settings
    try:
        config = run.config()
    except Exception:  # noqa: BLE001 - the page still has the samples
        config = {}
    report = style or {}
    if style and len(variants) < len(shown):
        report = {**report, "variants": {v: s for v, s in report.get("variants", {}).items() if v in variants}}
    from stylelora_tui.compare.build import build_result, prompt_item

    done = {id(item): {v: [vars(s) for s in item.samples.get(v, []) if s.done] for v in variants} for item in items}
    return build_result(
        run_name=", ".join(v for v in variants if v != "base"),
        ready=ready,
        settings={"samples": used["n"], "seed": used["seed"], "temperature": used["temperature"],
                  "top_p": used["top_p"], "max_new_tokens": used["max_new_tokens"]},
        variants=variants,
        items=[prompt_item(item.record, done[id(item)], variants) for item in items],
        style=report,
        losses={v: loss for v, loss in losses.items() if v in variants},
        config=config,
    )


def export_compare(request: ExportRequest, run: Run, runs: list[Run], data: dict[str, Any],
                   progress: Callable[[str], None],
                   started: Callable[[subprocess.Popen], None] = lambda proc: None) -> ExportResult:
    """Write compare.html and each run's compare.json, then ``stylelora-tui export RUN`` when the request asks for it.

    ``progress`` gets each line the export prints; ``started`` gets the
    export process, so whoever holds it can stop it on the way out.
    """
    from stylelora_tui.compare import html as compare_html
    from stylelora_tui.compare.build import COMPARE_JSON

    try:
        path = Path(request.path).expanduser()
        if path.is_dir():
            path = path / "compare.html"
        path = compare_html.write(path, data, run.events())
        for one in runs:  # the model card quotes RUN/compare.json (base vs that run)
            single = {**data, "run": one.name, "variants": ["base", one.name]}
            single["prompts"] = [{**p, "samples": {v: p["samples"].get(v, []) for v in single["variants"]}} for p in data["prompts"]]
            (one.path / COMPARE_JSON).write_text(json.dumps(single, indent=1, ensure_ascii=False), encoding="utf-8")
    except OSError as exc:
        return ExportResult(None, f"Could not write compare.html: {exc}", False)
    if not (request.card or request.merge or request.push):
        return ExportResult(str(path), "", True)
    command = [sys.executable, "-m", "stylelora_tui.cli.main", "export", str(run.path)]
    command += ["--merge"] if request.merge else []
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
