"""A comparison's pieces: one prompt's samples (``Item``) and the compare result's shape (compare.json).

``CompareSession`` builds them as samples stream in; ``from_result`` reads a
saved result back into them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from stylelora_tui.generation.protocol import SAMPLING_DEFAULTS, SAMPLING_KEYS


def record_key(record: dict[str, Any]) -> str:
    """What tells prompts apart: the record's id, else its text."""
    return str(record.get("id") or record.get("input"))


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
    saved: bool = False  # read back from compare.json, not generated in this session

    @classmethod
    def fresh(cls, record: dict[str, Any], label: str, settings: dict[str, Any], variants: list[str]) -> Item:
        """A prompt about to be generated: ``n`` empty samples per side, seeds counted from ``seed``."""
        samples = {v: [Sample(seed=settings["seed"] + i) for i in range(settings["n"])] for v in variants}
        return cls(dict(record), label, dict(settings), samples)

    @property
    def key(self) -> str:
        return record_key(self.record)

    def take(self, event: dict[str, Any]) -> int | None:
        """Apply one protocol line of a side of this item; the sample's index when it streamed a token."""
        samples = self.samples.get(event.get("variant", ""))
        i = int(event.get("sample", 0))
        if samples is None or not 0 <= i < len(samples):
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

    def has_samples(self, variants: list[str]) -> bool:
        return any(s.done for v in variants for s in self.samples.get(v, []))


# --------------------------------------------------------------------------- the result's shape, the held-out prompts


SAMPLE_FIELDS = ("seed", "text", "tokens", "stopped")
# compare.json names the protocol's sampling settings alike, but for the sample count.
SAVED_NAMES = {"n": "samples"}


def prompt_item(record: dict[str, Any], samples: dict[str, list[dict[str, Any]]], variants: list[str]) -> dict[str, Any]:
    """One prompt of a compare result: the record, the author's continuation, each side's samples."""
    return {
        "id": record.get("id"), "instruction": record.get("instruction"), "prompt": record.get("input"),
        "reference": record.get("output"),
        "samples": {v: [{k: sample.get(k) for k in SAMPLE_FIELDS} for sample in samples.get(v, [])] for v in variants},
    }


def build_result(*, run_name: str, ready: dict[str, Any] | None, settings: dict[str, Any], variants: list[str],
                 items: list[dict[str, Any]], style: dict[str, Any], losses: dict[str, Any],
                 config: dict[str, Any], general: dict[str, Any] | None = None,
                 forgetting: dict[str, Any] | None = None) -> dict[str, Any]:
    """The compare result: what compare.json holds and compare.html renders. ``settings``: the sampling settings used;
    ``general``, ``forgetting``: the forgetting check's losses and report (``compare.forgetting``)."""
    return {
        "run": run_name, "created": time.strftime("%Y-%m-%d %H:%M"), "model": (ready or {}).get("model"),
        "device": (ready or {}).get("device"),
        "settings": {SAVED_NAMES.get(key, key): settings[key] for key in SAMPLING_KEYS},
        "variants": variants, "prompts": items, "style": style, "eval_loss": losses,
        "general_loss": general or {}, "forgetting": forgetting, "config": config,
    }


class SavedResultError(ValueError):
    """A saved compare result (compare.json) that cannot be shown: the message says what is wrong in it."""


def settings_of(result: dict[str, Any]) -> dict[str, Any]:
    """The sampling settings a compare result was made with, as the session names them; raises KeyError."""
    saved = result["settings"]
    # A setting added since the file was written (repetition_penalty) had its neutral default then.
    older = {"repetition_penalty": 1.0}
    return {key: type(default)(saved[SAVED_NAMES.get(key, key)] if key not in older else saved.get(key, older[key]))
            for key, default in SAMPLING_DEFAULTS.items()}


def saved_item(prompt: dict[str, Any], label: str, settings: dict[str, Any], variants: list[str]) -> Item:
    """One prompt of a compare result as a finished item; raises KeyError, TypeError or ValueError on a bad shape."""
    record = {"id": prompt.get("id"), "instruction": prompt.get("instruction"), "input": str(prompt["prompt"]),
              "output": prompt.get("reference")}
    samples = {v: [Sample(seed=int(s["seed"]), text=str(s["text"]), done=True, tokens=s.get("tokens"),
                          stopped=s.get("stopped")) for s in prompt["samples"].get(v, [])] for v in variants}
    return Item(record, label, dict(settings), samples, finished=True, saved=True)


def saved_style(style: Any) -> dict[str, Any] | None:
    """A saved style report, with the parts the score table reads made safe to read (None for none)."""
    if not isinstance(style, dict) or not style:
        return None
    author, variants = style.get("author"), style.get("variants")
    return {**style, "reading": str(style.get("reading") or ""), "author": author if isinstance(author, dict) else {},
            "variants": {v: s for v, s in variants.items() if isinstance(s, dict)} if isinstance(variants, dict) else {},
            **({"by_author": [e for e in style["by_author"] if isinstance(e, dict)]} if isinstance(style.get("by_author"), list) else {})}
