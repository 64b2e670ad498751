"""A comparison built one prompt at a time, as samples stream in: what the Compare section drives.

``CompareSession`` holds the runs compared, the sampling settings, the
prompts asked and their samples, the held-out losses and the style report,
and turns them into the compare result (what compare.json holds). It knows
nothing of threads or widgets: the app feeds it the generation process's
lines as they arrive, ``build.compare`` (the CLI) feeds it a whole request at
a time, and a script can do either.

    session = CompareSession.for_runs([run], settings={"n": 2})
    item = session.start(session.records[0], session.record_label(0))
    for line in client.events(client.request("generate", **session.request_fields(item))):
        session.take(item, [line])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stylelora_tui.compare.authors import Author, authors_of, only_sides, style_with_authors
from stylelora_tui.compare.forgetting import GENERAL_SPLIT, forgetting_report, general_records, source_name
from stylelora_tui.compare.items import (  # noqa: F401 - record_key, SavedResultError: importable from here too
    Item, SavedResultError, build_result, prompt_item, record_key, saved_item, saved_style, settings_of,
)
from stylelora_tui.generation.protocol import (
    BASE, LOSS_FIELDS, SAMPLING_DEFAULTS, generate_fields, losses_by_variant, sampling_problem,
)
from stylelora_tui.runs.run import Run

STYLE_WAITING = "Style scores appear when the samples are done."
SETTING_FIELDS = (
    ("temperature", "Temperature (0 is greedy)", float),
    ("top_p", "Top-p (0 < p <= 1)", float),
    ("repetition_penalty", "Repetition penalty (1 = none, up to 2)", float),
    ("max_new_tokens", "Max new tokens", int),
    ("n", "Samples per side (n, 1-100)", int),
    ("seed", "Seed of sample 1 (sample i uses seed + i - 1)", int),
)


def eval_split(run: Run) -> Path:
    """The run's held-out split: its corpus's eval.jsonl."""
    return Path(run.config()["data"]["corpus"]) / "eval.jsonl"


def held_out_records(run: Run) -> list[dict[str, Any]]:
    """The run's held-out prompts; raises on a broken config or corpus."""
    from stylelora_tui.prompting import read_jsonl

    path = eval_split(run)
    return [r for r in read_jsonl(path) if isinstance(r, dict) and r.get("input")] if path.exists() else []


def parse_settings(values: dict[str, str], current: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """The settings typed in a form, checked as the generation process checks them."""
    new = dict(current)
    for name, label, kind in SETTING_FIELDS:
        try:
            new[name] = kind(str(values.get(name, current[name])).strip())
        except (TypeError, ValueError):
            return None, f"{label}: not a {'whole ' if kind is int else ''}number"
    problem = sampling_problem(new)
    return (None, problem) if problem else (new, "")


def _authors(runs: list[Run]) -> list[Author]:
    try:
        return authors_of(runs)
    except Exception:  # noqa: BLE001 - a broken config is reported where the run is opened; no per-author scores then
        return []


def fixed(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "-"  # "-" for none (or a hand-edited file's junk)


class CompareSession:
    """The base and some runs compared on prompts, one at a time."""

    def __init__(self, runs: list[Run], settings: dict[str, Any] | None = None,
                 records: list[dict[str, Any]] | None = None) -> None:
        """``records``: the held-out prompts (and the author's passages the style is scored against)."""
        self.runs = list(runs)
        self.variants = [BASE, *(run.name for run in self.runs)]
        self.settings = {**SAMPLING_DEFAULTS, **(settings or {})}
        self.records = list(records or [])
        self.authors: list[Author] = _authors(self.runs)  # one per corpus the runs learned (a mix's: its sources')
        self.items: list[Item] = []
        self.current: Item | None = None
        self.index = 0  # the sample looked at, the same in every pane
        self.follow = True  # the index follows the sample being streamed until the user browses
        self.pending: tuple[dict[str, Any], str] | None = None  # a prompt asked before the model was ready
        self.ready: dict[str, Any] | None = None
        self.losses: dict[str, dict[str, Any]] = {}
        self.loss_note = ""
        self.loss_requested = False
        self.general_path: Path | None = None  # the forgetting check's text: None for the built-in sample
        self.general_losses: dict[str, dict[str, Any]] = {}
        self.style: dict[str, Any] | None = None
        self.style_note = STYLE_WAITING
        self.saved: dict[str, Any] | None = None  # created, model, device of the compare.json shown, if one is

    @classmethod
    def from_result(cls, runs: list[Run], result: dict[str, Any], records: list[dict[str, Any]] | None = None) -> CompareSession:
        """A session showing a saved compare result (compare.json); raises ``SavedResultError`` saying what is wrong."""
        if not isinstance(result, dict):
            raise SavedResultError("not a JSON object")
        for key, kind in (("created", str), ("settings", dict), ("variants", list), ("prompts", list)):
            if not isinstance(result.get(key), kind):
                raise SavedResultError(f"missing key '{key}'" if key not in result else f"'{key}' is not a {kind.__name__}")
        try:
            session = cls(runs, settings_of(result), records)
        except (KeyError, TypeError, ValueError) as exc:
            raise SavedResultError(f"bad 'settings' ({type(exc).__name__}: {exc})") from None
        session.variants = [str(v) for v in result["variants"]]
        index = {str(r.get("input")): i for i, r in enumerate(session.records)}
        for number, prompt in enumerate(result["prompts"], 1):
            i = index.get(str(prompt.get("prompt")) if isinstance(prompt, dict) else "")
            label = session.record_label(i) if i is not None else f"saved {number}/{len(result['prompts'])}"
            try:
                session.items.append(saved_item(prompt, label, session.settings, session.variants))
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise SavedResultError(f"prompt {number} is incomplete ({type(exc).__name__}: {exc})") from None
        if not session.has_samples():
            raise SavedResultError("no samples in it")
        session.current = session.items[0]
        session.saved = {k: result.get(k) for k in ("created", "model", "device")}
        style, losses = result.get("style"), result.get("eval_loss")
        session.set_style(saved_style(style), "" if saved_style(style) else "no style scores saved")
        session.losses = {v: loss for v, loss in losses.items() if isinstance(loss, dict)} if isinstance(losses, dict) else {}
        session.loss_requested = bool(session.losses)  # the saved losses stand: they do not depend on sampling
        general = result.get("general_loss")
        session.general_losses = {v: loss for v, loss in general.items() if isinstance(loss, dict)} if isinstance(general, dict) else {}
        source = (result.get("forgetting") or {}).get("source") if isinstance(result.get("forgetting"), dict) else None
        session.general_path = Path(source) if isinstance(source, str) and source != source_name(None) else None
        return session

    @classmethod
    def for_runs(cls, runs: list[Run], settings: dict[str, Any] | None = None) -> CompareSession:
        """A session with the first run's held-out prompts (raises on a broken config or corpus)."""
        return cls(runs, settings, held_out_records(runs[0]) if runs else [])

    # ----------------------------------------------------------------- prompts and samples

    def record_label(self, index: int) -> str:
        return f"held-out {index + 1}/{len(self.records)}"

    def prompt_choices(self) -> list[tuple[str, str]]:
        """The held-out prompts to pick from (index, line), those with saved samples marked."""
        saved = {item.key for item in self.items if item.saved}
        return [(str(i), f"{i + 1}. {'(saved) ' if record_key(r) in saved else ''}"
                 + " ".join(str(r.get("input", "")).split())[:90]) for i, r in enumerate(self.records)]

    def show_saved(self, record: dict[str, Any]) -> bool:
        """Look at the saved samples of ``record``'s prompt; False when it has none (then generate it)."""
        item = next((item for item in self.items if item.saved and item.key == record_key(record)), None)
        if item is not None:
            self.current, self.index, self.follow = item, 0, True
        return item is not None

    def set_ready(self, ready: dict[str, Any]) -> None:
        """The generation process is up: its variants are the columns."""
        self.ready = ready
        self.variants = list(ready.get("variants") or self.variants)

    def start(self, record: dict[str, Any], label: str) -> Item:
        """A new prompt with the current settings; it replaces an earlier one of the same prompt."""
        item = Item.fresh(record, label, self.settings, self.variants)
        self.items = [old for old in self.items if old.key != item.key] + [item]
        self.current, self.index, self.follow = item, 0, True
        return item

    def request_fields(self, item: Item) -> dict[str, Any]:
        """The ``generate`` request for an item."""
        return generate_fields(item.record, item.settings, self.variants)

    def take(self, item: Item, events: list[dict[str, Any]]) -> list[str]:
        """Apply a batch of an item's protocol lines; the errors among them, as messages for the user."""
        errors = []
        for event in events:
            if "error" in event:
                item.error = f"Generation failed: {event['error']}"
                errors.append(item.error)
            elif event.get("variant") in item.samples:
                streamed = item.take(event)
                if streamed is not None and self.follow and item is self.current:
                    self.index = streamed
        return errors

    def finish(self, item: Item, cancelled: bool) -> bool:
        """The item's request ended; whether it finished well (then it counts in the scores)."""
        item.finished = not cancelled and not item.error
        return item.finished

    def take_losses(self, events: list[dict[str, Any]]) -> list[str]:
        """Apply ``eval_loss`` lines (the author's held-out text, or the general text's); the errors among them."""
        general = [e for e in events if e.get("split") == GENERAL_SPLIT]
        self.general_losses.update(losses_by_variant(general))
        self.losses.update(losses_by_variant(e for e in events if e.get("split") != GENERAL_SPLIT))
        errors = [f"{'General-text' if e in general else 'Held-out'} loss failed: {e['error']}" for e in events if "error" in e]
        if errors:
            self.loss_note = errors[-1]
        return errors

    def next_seeds(self) -> None:
        """New seeds, after the current prompt's: sampling again gives new text (greedy the same)."""
        if self.current is not None:
            self.settings["seed"] = self.current.settings["seed"] + self.current.settings["n"]

    # ----------------------------------------------------------------- browsing

    def sample_count(self) -> int:
        return len(next(iter(self.current.samples.values()), [])) if self.current else 0

    def step(self, delta: int) -> bool:
        """Look at another sample (every side moves together, wrapping); False when there is none."""
        if not (count := self.sample_count()):
            return False
        self.index, self.follow = (self.index + delta) % count, False
        return True

    def has_samples(self) -> bool:
        return any(item.has_samples(self.variants) for item in self.items)

    # ----------------------------------------------------------------- scores

    def style_inputs(self) -> tuple[list[str], list[str], dict[str, list[str]]] | None:
        """The author's held-out passages, the base's and each run's finished samples; None before any prompt finished."""
        done = [item for item in self.items if item.finished]
        if not done:
            return None
        texts = {v: [s.text for item in done for s in item.samples.get(v, []) if s.done] for v in self.variants}
        author = [str(r.get("output", "")) for r in self.records if r.get("output")]
        return author, texts.get(BASE, []), {v: texts[v] for v in self.variants if v != BASE}

    def score(self) -> dict[str, Any] | None:
        """The style report of the finished prompts, computed here and now (the app does it in a worker)."""
        inputs = self.style_inputs()
        if inputs is not None:
            self.set_style(style_with_authors(*inputs, self.authors))
        return self.style

    def set_style(self, report: dict[str, Any] | None, error: str = "") -> None:
        self.style = report
        self.style_note = error or ("" if self.records else "no held-out passages of the author to score against")

    def loss_requests(self) -> list[dict[str, Any]]:
        """The ``eval_loss`` requests a finished comparison makes: the author's held-out text, then the general
        text (plain text, every token) for the forgetting check; raises ``GeneralTextError`` on a bad file."""
        return [{"variants": self.variants},
                {"variants": self.variants, "records": general_records(self.general_path), "data_format": "raw_text",
                 "split": GENERAL_SPLIT}]

    def forgetting(self) -> dict[str, Any] | None:
        return forgetting_report(self.general_losses, self.losses, BASE, source_name(self.general_path))

    def score_rows(self) -> list[tuple[str, str, str, str, str, str, str]]:
        """The score table: side, Delta, words per sentence, MATTR, share of looping samples, held-out loss and
        general-text loss (the author row first)."""
        style = self.style or {}
        author = style.get("author", {})
        rows = [("author", "0", fixed(author.get("mean_sentence_length"), 1), fixed(author.get("mattr")), "", "", "")] if style else []
        for name in self.variants:
            scores = style.get("variants", {}).get(name, {})
            loss = self.losses.get(name, {})
            loops = scores.get("loop_share")
            rows.append((name, fixed(scores.get("delta")), fixed(scores.get("mean_sentence_length"), 1), fixed(scores.get("mattr")),
                         f"{loops:.0%}" if isinstance(loops, (int, float)) else "-",
                         fixed(loss.get("eval_loss")), fixed(self.general_losses.get(name, {}).get("eval_loss"))))
        return rows

    def status_line(self, activity: str) -> str:
        """What is going on, the sampling settings, and the model once loaded."""
        s, ready = self.settings, self.ready
        sample = f"sample {self.index + 1}/{self.sample_count()} · " if self.current else ""
        model = f" · {Path(str(ready.get('model'))).name} on {ready.get('device')}" if ready else ""
        return (f"{sample}{activity} · T {s['temperature']} · top-p {s['top_p']} · max {s['max_new_tokens']} · "
                f"n {s['n']} · seed {s['seed']}{model}")

    # ----------------------------------------------------------------- the result

    def result(self, variants: list[str] | None = None) -> dict[str, Any]:
        """The compare result (what compare.json holds) for the prompts with a finished sample of ``variants``.

        The style report keeps only ``variants``' scores when fewer are asked
        for. The settings are the current prompt's (the session's may have
        changed since), the session's when no prompt has a sample.
        """
        variants = variants or self.variants
        items = [item for item in self.items if item.has_samples(variants)]
        used = (self.current or items[-1]).settings if items else self.settings
        try:
            config = self.runs[0].config() if self.runs else {}
        except Exception:  # noqa: BLE001 - the page still has the samples
            config = {}
        report = self.style or {}
        if self.style and len(variants) < len(self.variants):
            report = {**report, "variants": {v: s for v, s in report.get("variants", {}).items() if v in variants}}
            if "by_author" in report:
                report["by_author"] = [only_sides(entry, variants) for entry in report["by_author"]]
        done = {id(item): {v: [vars(s) for s in item.samples.get(v, []) if s.done] for v in variants} for item in items}
        return build_result(
            run_name=", ".join(v for v in variants if v != BASE), ready=self.ready or self.saved, settings=used, variants=variants,
            items=[prompt_item(item.record, done[id(item)], variants) for item in items], style=report,
            losses={v: {k: loss.get(k) for k in LOSS_FIELDS} for v, loss in self.losses.items() if v in variants},
            general={v: {k: loss.get(k) for k in LOSS_FIELDS} for v, loss in self.general_losses.items() if v in variants},
            forgetting=forgetting_report({v: x for v, x in self.general_losses.items() if v in variants}, self.losses, BASE,
                                         source_name(self.general_path)),
            config=config,
        )
